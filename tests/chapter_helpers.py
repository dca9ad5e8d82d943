"""What tests comparing two runs' results share (`from chapter_helpers import without_timings`)."""


def without_timings(obj, timings):
    """`obj` (JSON-like: dicts, lists, values) without the keys named in `timings`, at any depth: the
    wall-clock numbers, which differ from run to run while everything else must repeat."""
    if isinstance(obj, dict):
        return {k: without_timings(v, timings) for k, v in obj.items() if k not in timings}
    if isinstance(obj, list):
        return [without_timings(v, timings) for v in obj]
    return obj
