"""scratchlm.runtime: the process settings made at import, and the ways to turn them off."""

import ctypes
import os
import sys

import pytest

from scratchlm import runtime


def test_import_sets_an_openmp_wait_policy():
    assert os.environ.get("OMP_WAIT_POLICY"), "importing scratchlm sets OMP_WAIT_POLICY (PASSIVE unless set)"


@pytest.mark.parametrize("env", [{"SCRATCHLM_KEEP_FREED_MEMORY": "0"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1000000"},
                                 {"MALLOC_TRIM_THRESHOLD_": "1000"}])
def test_the_environment_can_keep_malloc_as_it_is(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert runtime.keep_freed_memory() is False


def test_keeps_freed_memory_on_glibc(monkeypatch):
    for key in [k for k in os.environ if k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "SCRATCHLM_KEEP_FREED_MEMORY")]:
        monkeypatch.delenv(key)
    try:
        ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        pytest.skip("not glibc: mallopt is not there")
    assert sys.platform.startswith("linux") and runtime.keep_freed_memory() is True
