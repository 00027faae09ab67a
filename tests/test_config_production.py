"""The production `data:` section: one line naming the field when it is incomplete."""
import pytest

from taast_ray.config import load_config
from taast_ray.errors import ConfigError


@pytest.mark.parametrize("data, field", [
    ({"labelled": "L.json", "images": "/d"}, "data.pool: is needed when data.labelled is given"),
    ({"labelled": "L.json", "pool": "/d"}, "data.images: is needed when data.labelled is given"),
    ({"pool": "/d"}, "data.pool: needs data.labelled"),
    ({"labelled": "L.json", "pool": "/d", "images": "/d", "train": "t.json", "val": "v.json"}, "data.labelled:"),
    ({"yolo": "data.yaml", "pool": "/d"}, "data.yolo:"),
])
def test_incomplete_production_data(data, field):
    with pytest.raises(ConfigError) as err:
        load_config(None, {"data": data})
    assert str(err.value).startswith(field)


def test_production_is_the_teams_own_data():
    assert load_config(None, {"data": {"yolo": "data.yaml"}}).production
    assert load_config(None, {"data": {"labelled": "L.json", "pool": "p", "images": "i"}}).production
    assert not load_config(None, {}).production
