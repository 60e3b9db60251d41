"""Video to the police platform, below the sockets: Annex B frames, the PS muxer and RTP
packetiser, checked against ffmpeg's own encoder and ffprobe's demuxer, plus round trips and
random bytes."""

from __future__ import annotations

import json
import random
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from wire import annexb, ps, rtp


def encode_clip(path, codec: str, size: str = "320x240", frames: int = 30, noise: int = 0) -> bytes:
    """A short test pattern from ffmpeg's own encoder as an Annex B stream, one key frame every 10."""
    enc, fmt, extra = {"h264": ("libx264", "h264", ["-x264-params", "log=-1"]),
                       "h265": ("libx265", "hevc", ["-x265-params", "log-level=error"])}[codec]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
                    "-vf", f"noise=alls={noise}:allf=t", "-frames:v", str(frames), "-c:v", enc, "-preset", "ultrafast", "-g", "10", "-bf", "0", *extra,
                    "-f", fmt, str(path)], check=True, timeout=60)
    return path.read_bytes()


def ffprobe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                          "stream=codec_name,width,height,nb_read_frames:format=format_name", "-of", "json",
                          str(path)], check=True, capture_output=True, timeout=60)
    return json.loads(out.stdout)


def split(data: bytes, codec: str, piece: int) -> list[annexb.AccessUnit]:
    splitter = annexb.AccessUnitSplitter(codec)
    aus = []
    for i in range(0, len(data), piece):
        aus += splitter.feed(data[i:i + piece])
    return aus + splitter.flush()


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_ffmpeg_stream_through_ps_and_rtp_plays_in_ffprobe(tmp_path, codec):
    es = encode_clip(tmp_path / "clip.es", codec)
    aus = split(es, codec, 4096)
    assert len(aus) == 30 and [i for i, a in enumerate(aus) if a.keyframe] == [0, 10, 20]
    muxer = ps.PsMuxer(codec)
    pack = rtp.RtpPacketiser(ssrc=100000001, max_payload=1400, first_seq=65530)
    tcp = b""
    for i, au in enumerate(aus):
        pts = i * 3600
        for packet in pack.packetise(muxer.mux(au.data, pts, au.keyframe), pts):
            tcp += rtp.frame_rfc4571(packet)
    # The receiving side: RFC 4571 frames from TCP reads of odd sizes, RTP, PS.
    stream = rtp.Rfc4571Stream()
    packets = []
    for i in range(0, len(tcp), 999):
        packets += [rtp.parse_rtp(p) for p in stream.feed(tcp[i:i + 999])]
    assert {p.ssrc for p in packets} == {100000001} and {p.payload_type for p in packets} == {96}
    assert [p.seq for p in packets[:8]] == [65530, 65531, 65532, 65533, 65534, 65535, 0, 1]
    assert sum(p.marker for p in packets) == 30  # one marker per frame, on its last packet
    assert all(p.marker for p in packets if p is packets[-1])
    program = b"".join(p.payload for p in packets)
    units = ps.read_ps(program)
    maps = [u for u in units if isinstance(u, ps.StreamMap)]
    assert len(maps) == 3 and maps[0].streams == {0xE0: ps.STREAM_TYPES[codec]}
    assert [u.pts for u in units if isinstance(u, ps.Pes)] == [i * 3600 for i in range(30)]
    path = tmp_path / "out.ps"
    path.write_bytes(program)
    probe = ffprobe(path)
    assert probe["format"]["format_name"] == "mpeg"
    assert probe["streams"] == [{"codec_name": {"h264": "h264", "h265": "hevc"}[codec], "width": 320, "height": 240,
                                 "nb_read_frames": "30"}]


def test_large_key_frame_spans_several_pes_packets(tmp_path):
    es = encode_clip(tmp_path / "big.h264", "h264", size="1920x1080", frames=1, noise=60)
    (au,) = split(es, "h264", 65536)
    assert len(au.data) > ps.MAX_PES_PAYLOAD  # a noisy 1080p key frame is large
    units = ps.read_ps(ps.PsMuxer().mux(au.data, 0, True))
    pes = [u for u in units if isinstance(u, ps.Pes)]
    assert len(pes) >= 2 and pes[0].pts == 0 and all(p.pts is None for p in pes[1:])
    assert ps.elementary_stream(units) == au.data


def test_pack_header_and_pts_carry_33_bits():
    for t in (0, 1, 90_000, 2**32 + 12345, 2**33 - 1):
        (pack, pes) = ps.read_ps(ps.pack_header(t) + ps.pes_packets(b"x", t))
        assert pack.scr == t and pes.pts == t and pes.payload == b"x"


def test_crc32_mpeg_check_value():
    assert ps.crc32_mpeg(b"123456789") == 0x0376E6E7  # the CRC-32/MPEG-2 catalogue check value


def test_corrupt_psm_is_caught_by_its_crc():
    psm = bytearray(ps.program_stream_map(0x1B))
    psm[12] ^= 0x01
    with pytest.raises(ps.PsError, match="CRC mismatch"):
        ps.read_ps(bytes(psm))


def test_h264_access_units_split_on_first_slice_and_parameter_sets():
    sps, pps = b"\x67\x42\x00\x1e", b"\x68\xce\x3c\x80"
    idr = b"\x65\x88\x84"  # first_mb_in_slice = 0 (ue 1 bit)
    idr2 = b"\x65\x20\x84"  # a second slice of the same picture (first_mb_in_slice != 0)
    p = b"\x41\x9a\x02"
    sc = b"\x00\x00\x00\x01"
    stream = sc + sps + sc + pps + sc + idr + b"\x00\x00\x01" + idr2 + sc + p + sc + p
    aus = split(stream, "h264", 3)
    assert [(a.keyframe, a.data.count(sc)) for a in aus] == [(True, 4), (False, 1), (False, 1)]
    assert aus[0].data == sc + sps + sc + pps + sc + idr + sc + idr2


def test_splitter_bounds_what_it_holds():
    splitter = annexb.AccessUnitSplitter("h264", max_bytes=10_000)
    with pytest.raises(annexb.AnnexBError, match="no start code"):
        splitter.feed(b"\xff" * 20_000)
    splitter = annexb.AccessUnitSplitter("h264", max_bytes=10_000)
    with pytest.raises(annexb.AnnexBError, match="over 10000 bytes"):
        for _ in range(5):
            splitter.feed(b"\x00\x00\x01\x41" + b"\x7f" * 3_000)  # slices of one picture


def test_rtp_header_fields_and_malformed_packets():
    pkt = rtp.RtpPacket(96, 7, 123456, 0xDEADBEEF, True, b"abc").encode()
    assert pkt[:2] == b"\x80\xe0" and rtp.parse_rtp(pkt) == rtp.RtpPacket(96, 7, 123456, 0xDEADBEEF, True, b"abc")
    padded = bytes([pkt[0] | 0x20]) + pkt[1:] + b"\x00\x00\x03"
    assert rtp.parse_rtp(padded).payload == b"abc"
    for bad, reason in ((pkt[:10], "shorter"), (b"\x40" + pkt[1:], "version"),
                        (bytes([pkt[0] | 0x20]) + pkt[1:-1] + b"\xff", "padding"),
                        (bytes([pkt[0] | 0x0F]) + pkt[1:], "header longer")):
        with pytest.raises(rtp.RtpError, match=reason):
            rtp.parse_rtp(bad)
    with pytest.raises(rtp.RtpError, match="length 0"):
        rtp.Rfc4571Stream().feed(b"\x00\x00")


@given(frame=st.binary(max_size=200_000), pts=st.integers(0, 2**33 - 1), key=st.booleans(),
       codec=st.sampled_from(["h264", "h265"]))
@settings(max_examples=60, deadline=None)
def test_ps_round_trip(frame, pts, key, codec):
    units = ps.read_ps(ps.PsMuxer(codec).mux(frame, pts, key))
    assert ps.elementary_stream(units) == frame
    assert isinstance(units[0], ps.Pack) and units[0].scr == pts
    assert any(isinstance(u, ps.StreamMap) for u in units) == key


@given(frames=st.lists(st.binary(max_size=5000), min_size=1, max_size=6), mtu=st.integers(1, 1500),
       seq=st.integers(0, 65535), ssrc=st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_rtp_round_trip(frames, mtu, seq, ssrc):
    pack = rtp.RtpPacketiser(ssrc, 96, mtu, seq)
    stream = rtp.Rfc4571Stream()
    got: list[rtp.RtpPacket] = []
    for i, frame in enumerate(frames):
        wire = b"".join(rtp.frame_rfc4571(p) for p in pack.packetise(frame, i * 3600))
        got += [rtp.parse_rtp(p) for p in stream.feed(wire)]
    assert [p.seq for p in got] == [(seq + i) & 0xFFFF for i in range(len(got))]
    rebuilt, current = [], b""
    for p in got:
        current += p.payload
        if p.marker:
            rebuilt.append(current)
            current = b""
    assert rebuilt == frames and current == b""


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_only_codec_errors(data):
    for fn, err in ((ps.read_ps, ps.PsError), (rtp.parse_rtp, rtp.RtpError), (rtp.Rfc4571Stream().feed, rtp.RtpError),
                    (lambda d: annexb.AccessUnitSplitter("h264").feed(d), annexb.AnnexBError),
                    (lambda d: annexb.AccessUnitSplitter("h265").feed(d) + [], annexb.AnnexBError)):
        try:
            fn(data)
        except err:
            pass
    # And the same bytes placed right after a valid start code of each kind.
    for prefix in (ps.PACK_START, ps.PSM, b"\x00\x00\x01\xe0", ps.SYSTEM_HEADER):
        try:
            ps.read_ps(prefix + data)
        except ps.PsError:
            pass


def test_random_noise_comes_out_as_start_code_delimited_units():
    rng = random.Random(7)
    splitter = annexb.AccessUnitSplitter("h264")
    aus = []
    for _ in range(200):
        aus += splitter.feed(b"\x00\x00\x01" + bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 400))))
    aus += splitter.flush()
    assert aus and all(a.data.startswith(b"\x00\x00\x00\x01") for a in aus)
