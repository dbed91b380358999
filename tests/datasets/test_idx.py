"""IDX reader/writer against bytes built by hand with ``struct`` (independent of numpy)."""
import gzip
import struct

import numpy as np
import pytest

from functorch_lite.core.errors import DataError, ShapeError
from functorch_lite.datasets import read_idx, write_idx

# code, struct format, numpy dtype, sample values (exactly representable)
CASES = [
    (0x08, "B", np.uint8, [0, 1, 127, 128, 255, 7]),
    (0x09, "b", np.int8, [-128, -1, 0, 1, 127, 5]),
    (0x0B, "h", np.int16, [-32768, -2, 258, 1, 32767, 0]),
    (0x0C, "i", np.int32, [-2**31, -3, 65536, 16909060, 2**31 - 1, 0]),
    (0x0D, "f", np.float32, [-1.5, 0.0, 3.25, 0.125, 2.0**100, -0.0]),
    (0x0E, "d", np.float64, [-1.5, 0.1, 3.25, 1e-300, 2.0**900, -7.0]),
]


def idx_bytes(code, fmt, dims, values):
    """An IDX file assembled field by field, as the format describes it."""
    return (bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
            + struct.pack(f">{len(values)}{fmt}", *values))


@pytest.mark.parametrize("code,fmt,dtype,values", CASES)
@pytest.mark.parametrize("dims", [(6,), (1, 2, 3)])
@pytest.mark.parametrize("gz", [False, True])
def test_read_hand_built(tmp_path, code, fmt, dtype, values, dims, gz):
    raw = idx_bytes(code, fmt, dims, values)
    # gzip is detected by content: the name has no .gz on purpose
    (tmp_path / "f.idx").write_bytes(gzip.compress(raw) if gz else raw)
    got = read_idx(tmp_path / "f.idx")
    assert got.dtype == np.dtype(dtype) and got.shape == dims
    assert got.ravel().tolist() == values
    assert got.flags.writeable  # a copy, not a read-only view of the file's bytes
    np.testing.assert_array_equal(read_idx(raw), got)


@pytest.mark.parametrize("code,fmt,dtype,values", CASES)
@pytest.mark.parametrize("name", ["w.idx", "w.idx.gz"])
def test_write_matches_hand_built(tmp_path, code, fmt, dtype, values, name):
    array = np.asarray(values, dtype).reshape(3, 2)
    write_idx(tmp_path / name, array)
    data = (tmp_path / name).read_bytes()
    if name.endswith(".gz"):
        assert data[:2] == b"\x1f\x8b"
        data = gzip.decompress(data)
    assert data == idx_bytes(code, fmt, (3, 2), values)


def test_write_then_read_big_endian_input(tmp_path):
    array = np.arange(12, dtype=">i4").reshape(2, 3, 2)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.gz", array)), array)


def test_empty_and_scalar(tmp_path):
    assert read_idx(idx_bytes(0x08, "B", (0, 28), [])).shape == (0, 28)
    assert read_idx(idx_bytes(0x0C, "i", (), [42])).tolist() == 42


def write(tmp_path, data, name="bad.idx"):
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


def test_truncated_data(tmp_path):
    path = write(tmp_path, idx_bytes(0x0B, "h", (2, 3), [1, 2, 3, 4, 5, 6])[:-3])
    with pytest.raises(DataError, match=r"IDX file '.*bad\.idx': truncated: shape \(2, 3\) of "
                                        r"int16 needs 24 bytes, got 21\nHint: delete the file.*"
                                        r"FUNCTORCH_LITE_DATA"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = write(tmp_path, idx_bytes(0x08, "B", (2,), [1, 2]) + b"\0")
    with pytest.raises(DataError, match=r"bad\.idx': trailing garbage: .* needs 10 bytes, got 11"):
        read_idx(path)


def test_truncated_header(tmp_path):
    with pytest.raises(DataError, match=r"truncated header: 3 dimensions need 16 bytes, got 9"):
        read_idx(write(tmp_path, idx_bytes(0x08, "B", (1, 1, 1), [3])[:9]))
    with pytest.raises(DataError, match=r"expected at least a 4-byte header, got 2 bytes"):
        read_idx(write(tmp_path, b"\0\0"))


def test_bad_magic(tmp_path):
    path = write(tmp_path, b"PK\x03\x04" + b"\0" * 20, "notidx.bin")
    with pytest.raises(DataError, match=r"'.*notidx\.bin': bad magic: expected the file to "
                                        r"start with two zero bytes, got 504b"):
        read_idx(path)


def test_unknown_dtype_code(tmp_path):
    with pytest.raises(DataError, match=r"unknown dtype code 0x0A; expected one of 0x08, 0x09, "
                                        r"0x0B, 0x0C, 0x0D, 0x0E"):
        read_idx(write(tmp_path, bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 9])))


def test_truncated_gzip(tmp_path):
    gz = gzip.compress(idx_bytes(0x08, "B", (100,), list(range(100))))
    with pytest.raises(DataError, match=r"'.*cut\.gz': truncated or corrupt gzip data.*\n"
                                        r"Hint: delete the file"):
        read_idx(write(tmp_path, gz[: len(gz) // 2], "cut.gz"))


def test_corrupt_gzip(tmp_path):
    gz = bytearray(gzip.compress(idx_bytes(0x08, "B", (100,), list(range(100)))))
    gz[-6] ^= 0xFF  # damage the CRC-32 trailer
    with pytest.raises(DataError, match=r"'.*crc\.gz': truncated or corrupt gzip data"):
        read_idx(write(tmp_path, bytes(gz), "crc.gz"))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"IDX file '.*nope\.idx': no such file\nHint: check "
                                        r"the path"):
        read_idx(tmp_path / "nope.idx")


def test_write_unsupported_dtype(tmp_path):
    with pytest.raises(ShapeError, match=r"write_idx: array dtype int64 has no IDX code; "
                                         r"expected one of uint8, int8, int16.*\nHint: cast"):
        write_idx(tmp_path / "x.idx", np.arange(3, dtype=np.int64))
    assert list(tmp_path.iterdir()) == []
