import platform
import sys

from hive.runtime.engine.host_memory import keep_freed_memory


def test_tunes_glibc_and_is_idempotent():
    expected = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is expected
    assert keep_freed_memory() is expected
