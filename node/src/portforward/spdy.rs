//! SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00, plus 3.1's WINDOW_UPDATE), as much of
//! it as `kubectl port-forward` speaks: pure, no I/O. A [`Decoder`] turns the bytes of one
//! connection into [`Frame`]s, an [`Encoder`] turns frames into bytes.
//!
//! Invariants:
//! - Name/value header blocks are compressed with one zlib stream per direction of the
//!   connection, primed with the SPDY/3 dictionary ([`DICTIONARY`]) and sync-flushed after
//!   every block; so a `Decoder` and an `Encoder` must see every frame of their direction,
//!   in order, and live as long as the connection.
//! - Header names are lowercase on the wire (the decoder lowercases; the encoder writes
//!   them lowercase); a value holding several values joins them with NUL.
//! - Nothing is buffered beyond one frame: a frame longer than [`MAX_FRAME`] (the 24-bit
//!   length's limit) cannot exist, a header block inflating past [`MAX_HEADER_BLOCK`] or
//!   any malformed frame is an error that ends the connection.
//! - Frame types this server never acts on (SETTINGS, WINDOW_UPDATE, CREDENTIAL, …) are
//!   decoded far enough to be skipped: spdystream, kubectl's SPDY library, does no flow
//!   control either.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The protocol version in every control frame.
pub(crate) const VERSION: u16 = 3;
/// Longest frame payload: the length field has 24 bits.
pub(crate) const MAX_FRAME: usize = (1 << 24) - 1;
/// Longest inflated header block accepted.
pub(crate) const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// Flag of a DATA frame (and of SYN_STREAM, SYN_REPLY, HEADERS): the sender's last frame
/// on the stream.
pub(crate) const FLAG_FIN: u8 = 0x01;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes (SPDY/3 §2.4.2) this server sends.
pub(crate) mod rst {
    pub(crate) const PROTOCOL_ERROR: u32 = 1;
    pub(crate) const CANCEL: u32 = 5;
}

/// GOAWAY status codes.
pub(crate) mod goaway {
    pub(crate) const OK: u32 = 0;
    pub(crate) const PROTOCOL_ERROR: u32 = 1;
}

/// A header block: lowercase names, each with its values in order.
pub(crate) type Headers = Vec<(String, String)>;

/// The first value of header `name` (lowercase).
pub(crate) fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// One SPDY frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    SynStream { stream: u32, associated: u32, priority: u8, flags: u8, headers: Headers },
    SynReply { stream: u32, flags: u8, headers: Headers },
    RstStream { stream: u32, status: u32 },
    /// Settings are read and ignored: (id, value) pairs.
    Settings(Vec<(u32, u32)>),
    Ping { id: u32 },
    GoAway { last_good: u32, status: u32 },
    Headers { stream: u32, flags: u8, headers: Headers },
    WindowUpdate { stream: u32, delta: u32 },
    Data { stream: u32, flags: u8, data: Bytes },
    /// A control frame of a type this codec does not know (CREDENTIAL, NOOP of SPDY/2).
    Unknown { kind: u16 },
}

/// Why a connection's bytes are not SPDY/3 this codec accepts.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpdyError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("invalid {what} frame: {why}")]
    Invalid { what: &'static str, why: &'static str },
    #[error("header block: {0}")]
    HeaderBlock(&'static str),
    #[error("header block does not inflate")]
    Inflate(#[source] flate2::DecompressError),
    #[error("header block does not deflate")]
    Deflate(#[source] flate2::CompressError),
}

fn invalid(what: &'static str, why: &'static str) -> SpdyError {
    SpdyError::Invalid { what, why }
}

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1):
/// 65 length-prefixed header names and values, then a run of status lines, dates and
/// common values. Built once; its Adler-32 is what both ends put in the zlib header.
pub(crate) fn dictionary() -> &'static [u8] {
    static DICT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: [&str; 65] = [
            "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
            "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
            "content-base", "content-encoding", "content-language", "content-length", "content-location",
            "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
            "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
            "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
            "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
            "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
            "public", "set-cookie", "keep-alive", "origin",
        ];
        const TAIL: [&str; 5] = [
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized\
             403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable",
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,\
             text/javascript,publicprivatemax-age=gzip,deflate,sdch",
            "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
        ];
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        for t in TAIL {
            d.extend_from_slice(t.as_bytes());
        }
        d
    })
}

/// Reads frames from the bytes of one direction of a connection.
pub(crate) struct Decoder {
    buf: BytesMut,
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder { buf: BytesMut::new(), inflate: Decompress::new(true) }
    }
}

impl Decoder {
    /// Appends bytes read from the connection.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, None when more bytes are needed.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let len = (usize::from(self.buf[5]) << 16) | (usize::from(self.buf[6]) << 8) | usize::from(self.buf[7]);
        if self.buf.len() < 8 + len {
            self.buf.reserve(8 + len - self.buf.len());
            return Ok(None);
        }
        let mut frame = self.buf.split_to(8 + len).freeze();
        let first = frame.get_u32();
        let flags = frame.get_u8();
        frame.advance(3);
        if first & 0x8000_0000 == 0 {
            let stream = first & 0x7fff_ffff;
            if stream == 0 {
                return Err(invalid("DATA", "stream id 0"));
            }
            return Ok(Some(Frame::Data { stream, flags, data: frame }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = (first & 0xffff) as u16;
        self.control(kind, flags, frame).map(Some)
    }

    fn control(&mut self, kind: u16, flags: u8, mut p: Bytes) -> Result<Frame, SpdyError> {
        let need = |p: &Bytes, n: usize, what| if p.len() < n { Err(invalid(what, "too short")) } else { Ok(()) };
        let stream_id = |p: &mut Bytes, what| {
            let id = p.get_u32() & 0x7fff_ffff;
            if id == 0 { Err(invalid(what, "stream id 0")) } else { Ok(id) }
        };
        Ok(match kind {
            TYPE_SYN_STREAM => {
                need(&p, 10, "SYN_STREAM")?;
                let stream = stream_id(&mut p, "SYN_STREAM")?;
                let associated = p.get_u32() & 0x7fff_ffff;
                let priority = p.get_u8() >> 5;
                p.advance(1); // credential slot
                let headers = self.headers(&p)?;
                Frame::SynStream { stream, associated, priority, flags, headers }
            }
            TYPE_SYN_REPLY => {
                need(&p, 4, "SYN_REPLY")?;
                let stream = stream_id(&mut p, "SYN_REPLY")?;
                Frame::SynReply { stream, flags, headers: self.headers(&p)? }
            }
            TYPE_HEADERS => {
                need(&p, 4, "HEADERS")?;
                let stream = stream_id(&mut p, "HEADERS")?;
                Frame::Headers { stream, flags, headers: self.headers(&p)? }
            }
            TYPE_RST_STREAM => {
                if p.len() != 8 {
                    return Err(invalid("RST_STREAM", "length is not 8"));
                }
                let stream = stream_id(&mut p, "RST_STREAM")?;
                Frame::RstStream { stream, status: p.get_u32() }
            }
            TYPE_SETTINGS => {
                need(&p, 4, "SETTINGS")?;
                let n = p.get_u32() as usize;
                if p.len() != n.saturating_mul(8) {
                    return Err(invalid("SETTINGS", "length does not match its entry count"));
                }
                Frame::Settings((0..n).map(|_| (p.get_u32() & 0x00ff_ffff, p.get_u32())).collect())
            }
            TYPE_PING => {
                if p.len() != 4 {
                    return Err(invalid("PING", "length is not 4"));
                }
                Frame::Ping { id: p.get_u32() }
            }
            TYPE_GOAWAY => {
                if p.len() != 8 {
                    return Err(invalid("GOAWAY", "length is not 8"));
                }
                Frame::GoAway { last_good: p.get_u32() & 0x7fff_ffff, status: p.get_u32() }
            }
            TYPE_WINDOW_UPDATE => {
                if p.len() != 8 {
                    return Err(invalid("WINDOW_UPDATE", "length is not 8"));
                }
                Frame::WindowUpdate { stream: p.get_u32() & 0x7fff_ffff, delta: p.get_u32() & 0x7fff_ffff }
            }
            kind => Frame::Unknown { kind },
        })
    }

    /// Inflates and parses one header block (the connection's zlib stream goes on).
    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let block = self.inflate_block(compressed)?;
        parse_headers(&block)
    }

    fn inflate_block(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(512);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(SpdyError::HeaderBlock("longer than 256 KiB"));
                }
                out.reserve(out.len());
            }
            let (in0, out0) = (self.inflate.total_in(), out.len());
            let primed = match self.inflate.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync) {
                Ok(_) => false,
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(dictionary()).map_err(SpdyError::Inflate)?;
                    true
                }
                Err(e) => return Err(SpdyError::Inflate(e)),
            };
            let consumed = (self.inflate.total_in() - in0) as usize;
            pos += consumed;
            if pos == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if consumed == 0 && out.len() == out0 && !primed && out.len() < out.capacity() {
                return Err(SpdyError::HeaderBlock("truncated compressed data"));
            }
        }
    }
}

/// Parses an inflated name/value block: a 32-bit count, then length-prefixed names and
/// values; a value's NUL-separated parts become separate entries.
pub(crate) fn parse_headers(mut b: &[u8]) -> Result<Headers, SpdyError> {
    fn take<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], SpdyError> {
        if b.len() < 4 {
            return Err(SpdyError::HeaderBlock("truncated"));
        }
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if b.len() < 4 + n {
            return Err(SpdyError::HeaderBlock("truncated"));
        }
        let (s, rest) = b[4..].split_at(n);
        *b = rest;
        Ok(s)
    }
    if b.len() < 4 {
        return Err(SpdyError::HeaderBlock("truncated"));
    }
    let count = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    b = &b[4..];
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = take(&mut b)?;
        let value = take(&mut b)?;
        if name.is_empty() {
            return Err(SpdyError::HeaderBlock("empty header name"));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        for v in value.split(|c| *c == 0) {
            headers.push((name.clone(), String::from_utf8_lossy(v).into_owned()));
        }
    }
    if !b.is_empty() {
        return Err(SpdyError::HeaderBlock("bytes after the last header"));
    }
    Ok(headers)
}

/// Serialises a name/value block (before compression), one entry per name.
pub(crate) fn serialize_headers(headers: &Headers) -> Vec<u8> {
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in headers {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let mut b = Vec::new();
    b.extend_from_slice(&(names.len() as u32).to_be_bytes());
    for name in names {
        let value = headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>().join("\0");
        let name = name.to_ascii_lowercase();
        b.extend_from_slice(&(name.len() as u32).to_be_bytes());
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(&(value.len() as u32).to_be_bytes());
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// Writes frames for one direction of a connection.
pub(crate) struct Encoder {
    deflate: Compress,
    primed: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder { deflate: Compress::new(Compression::default(), true), primed: false }
    }
}

impl Encoder {
    /// The bytes of `frame`. A DATA payload over [`MAX_FRAME`] is an error (callers chunk).
    pub(crate) fn encode(&mut self, frame: &Frame) -> Result<Bytes, SpdyError> {
        let mut out = BytesMut::new();
        match frame {
            Frame::Data { stream, flags, data } => {
                if data.len() > MAX_FRAME {
                    return Err(invalid("DATA", "payload over 16 MiB"));
                }
                out.put_u32(stream & 0x7fff_ffff);
                out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                out.put_slice(data);
            }
            Frame::SynStream { stream, associated, priority, flags, headers } => {
                let mut p = BytesMut::new();
                p.put_u32(*stream);
                p.put_u32(*associated);
                p.put_u8(priority << 5);
                p.put_u8(0);
                p.put_slice(&self.deflate_block(&serialize_headers(headers))?);
                control(&mut out, TYPE_SYN_STREAM, *flags, &p);
            }
            Frame::SynReply { stream, flags, headers } | Frame::Headers { stream, flags, headers } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) { TYPE_SYN_REPLY } else { TYPE_HEADERS };
                let mut p = BytesMut::new();
                p.put_u32(*stream);
                p.put_slice(&self.deflate_block(&serialize_headers(headers))?);
                control(&mut out, kind, *flags, &p);
            }
            Frame::RstStream { stream, status } => control(&mut out, TYPE_RST_STREAM, 0, &[stream.to_be_bytes(), status.to_be_bytes()].concat()),
            Frame::Settings(entries) => {
                let mut p = BytesMut::new();
                p.put_u32(entries.len() as u32);
                for (id, value) in entries {
                    p.put_u32(id & 0x00ff_ffff);
                    p.put_u32(*value);
                }
                control(&mut out, TYPE_SETTINGS, 0, &p);
            }
            Frame::Ping { id } => control(&mut out, TYPE_PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => control(&mut out, TYPE_GOAWAY, 0, &[last_good.to_be_bytes(), status.to_be_bytes()].concat()),
            Frame::WindowUpdate { stream, delta } => control(&mut out, TYPE_WINDOW_UPDATE, 0, &[stream.to_be_bytes(), delta.to_be_bytes()].concat()),
            Frame::Unknown { kind } => control(&mut out, *kind, 0, &[]),
        }
        Ok(out.freeze())
    }

    /// Compresses one header block, sync-flushed so the peer can inflate it whole.
    fn deflate_block(&mut self, block: &[u8]) -> Result<Vec<u8>, SpdyError> {
        if !self.primed {
            self.deflate.set_dictionary(dictionary()).map_err(SpdyError::Deflate)?;
            self.primed = true;
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.len().max(64));
            }
            let before = self.deflate.total_in();
            self.deflate.compress_vec(&block[pos..], &mut out, FlushCompress::Sync).map_err(SpdyError::Deflate)?;
            pos += (self.deflate.total_in() - before) as usize;
            // Done once all input is in and the flush left room to spare.
            if pos == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, payload: &[u8]) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32((u32::from(flags) << 24) | payload.len() as u32);
    out.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let mut enc = Encoder::default();
        let mut dec = Decoder::default();
        let mut got = Vec::new();
        for f in frames {
            let bytes = enc.encode(f).expect("encode");
            // Feed a byte at a time: frames cross reads anywhere.
            for b in bytes.iter() {
                dec.push(&[*b]);
                while let Some(frame) = dec.next_frame().expect("decode") {
                    got.push(frame);
                }
            }
        }
        got
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b"charset=utf-8charset=iso-8859-1,utf-,*,enq=0."));
        // The dictionary id every SPDY/3 peer writes in its zlib header (FDICT).
        let mut c = Compress::new(Compression::default(), true);
        assert_eq!(c.set_dictionary(d).expect("dictionary"), 0xe3c6_a7c2);
    }

    #[test]
    fn frames_roundtrip_through_one_compression_context() {
        let frames = vec![
            Frame::SynStream { stream: 1, associated: 0, priority: 0, flags: 0, headers: h(&[("streamtype", "error"), ("port", "8080"), ("requestid", "0")]) },
            Frame::SynStream { stream: 3, associated: 0, priority: 0, flags: 0, headers: h(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]) },
            Frame::SynReply { stream: 1, flags: 0, headers: vec![] },
            Frame::Data { stream: 3, flags: 0, data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n") },
            Frame::Data { stream: 1, flags: FLAG_FIN, data: Bytes::new() },
            Frame::Headers { stream: 3, flags: 0, headers: h(&[("a", "1"), ("a", "2")]) },
            Frame::RstStream { stream: 3, status: rst::CANCEL },
            Frame::Settings(vec![(7, 65536)]),
            Frame::Ping { id: 1 },
            Frame::WindowUpdate { stream: 3, delta: 1024 },
            Frame::GoAway { last_good: 3, status: goaway::OK },
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn data_frame_layout() {
        let bytes = Encoder::default().encode(&Frame::Data { stream: 5, flags: FLAG_FIN, data: Bytes::from_static(b"hi") }).expect("encode");
        assert_eq!(&bytes[..], &[0, 0, 0, 5, 1, 0, 0, 2, b'h', b'i']);
        let ping = Encoder::default().encode(&Frame::Ping { id: 7 }).expect("encode");
        assert_eq!(&ping[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7]);
    }

    #[test]
    fn header_blocks_are_zlib_with_the_dictionary_id() {
        let mut enc = Encoder::default();
        let bytes = enc.encode(&Frame::SynReply { stream: 1, flags: 0, headers: vec![] }).expect("encode");
        // 8 header bytes, 4 stream id, then the zlib header: FDICT set, dictionary id.
        let z = &bytes[12..];
        assert_eq!(z[0] & 0x0f, 8, "deflate");
        assert_ne!(z[1] & 0x20, 0, "FDICT");
        assert_eq!(&z[2..6], &0xe3c6_a7c2u32.to_be_bytes());
        // The second block continues the stream: no new zlib header.
        let second = enc.encode(&Frame::SynReply { stream: 3, flags: 0, headers: vec![] }).expect("encode");
        assert!(second.len() < bytes.len());
    }

    #[test]
    fn multiple_values_join_with_nul() {
        let block = serialize_headers(&h(&[("x", "a"), ("y", "b"), ("x", "c")]));
        assert_eq!(parse_headers(&block).expect("parse"), h(&[("x", "a"), ("x", "c"), ("y", "b")]));
        assert!(block.windows(3).any(|w| w == b"a\0c"));
    }

    #[test]
    fn uppercase_names_are_lowercased() {
        let mut block = 1u32.to_be_bytes().to_vec();
        for s in ["StreamType", "data"] {
            block.extend_from_slice(&(s.len() as u32).to_be_bytes());
            block.extend_from_slice(s.as_bytes());
        }
        assert_eq!(parse_headers(&block).expect("parse"), h(&[("streamtype", "data")]));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("version 2", vec![0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]),
            ("short ping", vec![0x80, 3, 0, 6, 0, 0, 0, 2, 0, 1]),
            ("data on stream 0", vec![0, 0, 0, 0, 0, 0, 0, 0]),
            ("rst on stream 0", vec![0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5]),
            ("syn_stream too short", vec![0x80, 3, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1]),
            ("syn_stream garbage headers", vec![0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
            ("settings count mismatch", vec![0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 2]),
        ];
        for (what, bytes) in cases {
            let mut d = Decoder::default();
            d.push(&bytes);
            assert!(d.next_frame().is_err(), "{what}");
        }
        assert!(parse_headers(&[0, 0, 0, 1, 0, 0, 0, 9, b'x']).is_err(), "truncated name");
        assert!(parse_headers(&[0, 0, 0, 0, 1]).is_err(), "trailing bytes");
    }

    #[test]
    fn incomplete_frames_wait_for_more_bytes() {
        let mut d = Decoder::default();
        d.push(&[0, 0, 0, 1, 0, 0, 0, 3, b'a']);
        assert_eq!(d.next_frame().expect("ok"), None);
        d.push(b"bc");
        assert_eq!(d.next_frame().expect("ok"), Some(Frame::Data { stream: 1, flags: 0, data: Bytes::from_static(b"abc") }));
        assert_eq!(d.next_frame().expect("ok"), None);
    }

    #[test]
    fn unknown_control_frames_are_skipped_whole() {
        let mut d = Decoder::default();
        d.push(&[0x80, 3, 0, 10, 0, 0, 0, 2, 9, 9, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(d.next_frame().expect("ok"), Some(Frame::Unknown { kind: 10 }));
        assert_eq!(d.next_frame().expect("ok"), Some(Frame::Data { stream: 1, flags: 0, data: Bytes::new() }));
    }
}
