"""Throughput against actor count, one PNG beside the benchmark's JSON."""
from __future__ import annotations

from pathlib import Path


def plot_scaling(report: dict, path: Path) -> Path | None:
    """Ray detector pass and end to end per actor count, the plain loop as a line; None if no row ran."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    rows = [r for r in report["ray"]["actors"] if "skipped" not in r]
    if not rows:
        return None
    actors = [r["actors"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    detect = [r["detect_pass_images_per_s"] for r in rows]
    ax.plot(actors, detect, "o-", label="Ray detector pass (read, decode, YOLOv8)")
    ax.plot(actors, [detect[0] * a / actors[0] for a in actors], ":", color="grey",
            label="linear from the first point")
    if "end_to_end_images_per_s" in rows[0]:
        ax.plot(actors, [r["end_to_end_images_per_s"] for r in rows], "s-",
                label="end to end (taast select --pool)")
    ax.axhline(report["ray"]["plain_loop"]["images_per_s"], ls="--", color="black",
               label="plain loop, one process")
    s, c = report["settings"], report["ray"]["cluster"]
    ax.set(xlabel="model actors", ylabel="images / s", xticks=actors, ylim=(0, None),
           title=f"{s['size']} JPEGs, {s['weights']} at {s['imgsz']} px\n{report['hardware']['cpu']}, "
                 f"{c['nodes']} Ray node(s), {c['cpus']:g} CPUs, {c['gpus']:g} GPUs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
