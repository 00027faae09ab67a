"""address.py: --address / RAY_ADDRESS parsed and probed before Ray starts (one line, seconds)."""
import time

import pytest

from taast_ray.address import check_address, split_address
from taast_ray.errors import ConfigError


@pytest.mark.parametrize("text, parsed", [
    ("10.0.0.5:6379", ("10.0.0.5", 6379)), ("head", ("head", 6379)), ("ray://head:10001", ("head", 10001)),
    ("ray://head", ("head", 10001)), ("[::1]:7000", ("::1", 7000)), ("auto", None), ("local", None),
])
def test_addresses_that_parse(text, parsed):
    assert split_address(text) == parsed


@pytest.mark.parametrize("text, reason", [
    ("notahost:abc", "port must be a number"), ("h:0", "port must be a number"), ("h:70000", "port must be"),
    (":6379", "host is empty"), ("http://h:8265", "not an address"), ("::1:6379", "needs brackets"),
    ("a b:1", "not an address"),
])
def test_addresses_that_do_not(text, reason):
    with pytest.raises(ValueError, match=reason):
        split_address(text)
    with pytest.raises(ConfigError, match=f"ray.address: .*{reason}"):
        check_address(text)


def test_an_unreachable_address_fails_fast_with_one_line():
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        check_address("127.0.0.1:1")
    assert time.perf_counter() - start < 5 and "cannot connect to 127.0.0.1:1" in str(err.value)
    with pytest.raises(ConfigError, match="cannot resolve host 'notahost.invalid'"):
        check_address("notahost.invalid:6379")
