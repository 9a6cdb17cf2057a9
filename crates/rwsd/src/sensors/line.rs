//! Splitting a byte stream into lines, safely: bounded length, CR/LF endings, binary noise
//! rejected, read timeouts surfaced so a driver can check for shutdown.

use std::collections::VecDeque;
use std::io::{self, Read};

use super::LineError;

/// Longest accepted line in bytes (NMEA allows 82; PWD frames are shorter than 100).
pub const MAX_LINE: usize = 512;

/// What the reader produced.
#[derive(Debug, PartialEq)]
pub enum Next {
    Line(String),
    Bad(LineError),
    /// The read timed out with no complete line.
    Timeout,
    /// End of stream (a file ended or the other side hung up).
    Eof,
}

/// Reads lines from any byte stream (serial port, pseudo-terminal, file, FIFO, stdin).
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    ready: VecDeque<Next>,
    discarding: bool,
    max: usize,
    eof: bool,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_max(inner, MAX_LINE)
    }

    pub fn with_max(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            ready: VecDeque::new(),
            discarding: false,
            max,
            eof: false,
        }
    }

    /// The next line, bad line, timeout or end of stream. I/O errors other than timeouts and
    /// interruptions are returned (the driver treats them as a disconnect).
    pub fn next_line(&mut self) -> io::Result<Next> {
        loop {
            if let Some(n) = self.ready.pop_front() {
                return Ok(n);
            }
            if self.eof {
                return Ok(Next::Eof);
            }
            let mut chunk = [0u8; 256];
            match self.inner.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    if !self.buf.is_empty() && !self.discarding {
                        let rest = std::mem::take(&mut self.buf);
                        self.ready.push_back(decode(&rest));
                    }
                }
                Ok(n) => self.push(&chunk[..n]),
                Err(e)
                    if e.kind() == io::ErrorKind::TimedOut
                        || e.kind() == io::ErrorKind::WouldBlock =>
                {
                    return Ok(Next::Timeout)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                if self.discarding {
                    self.discarding = false;
                } else {
                    let line = std::mem::take(&mut self.buf);
                    self.ready.push_back(decode(&line));
                }
                self.buf.clear();
                continue;
            }
            if self.discarding {
                continue;
            }
            self.buf.push(b);
            if self.buf.len() > self.max {
                self.ready
                    .push_back(Next::Bad(LineError::TooLong(self.max)));
                self.buf.clear();
                self.discarding = true;
            }
        }
    }
}

/// A raw line (without `\n`) as text, or why not.
fn decode(raw: &[u8]) -> Next {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let Ok(s) = std::str::from_utf8(raw) else {
        return Next::Bad(LineError::Binary);
    };
    // Framing characters SOH/STX/ETX and tabs are legitimate; other controls are noise.
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\u{1}' | '\u{2}' | '\u{3}'))
    {
        return Next::Bad(LineError::Binary);
    }
    Next::Line(s.to_string())
}

/// Splits a replay-log line `<seconds> <raw line>` into its time and the raw line.
pub fn split_timestamp(line: &str) -> Result<(f64, &str), LineError> {
    let (t, rest) = line.split_once(' ').ok_or(LineError::NoTimestamp)?;
    let t: f64 = t.parse().map_err(|_| LineError::NoTimestamp)?;
    if !t.is_finite() || t < 0.0 {
        return Err(LineError::NoTimestamp);
    }
    Ok((t, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Vec<Next> {
        let mut r = LineReader::with_max(bytes, 16);
        let mut out = Vec::new();
        loop {
            match r.next_line().unwrap() {
                Next::Eof => return out,
                n => out.push(n),
            }
        }
    }

    #[test]
    fn lines_noise_and_overlong() {
        let got = all(b"a\r\nb\n\xff\xfe\n\x00x\nthis line is far too long\nc");
        assert_eq!(
            got,
            vec![
                Next::Line("a".into()),
                Next::Line("b".into()),
                Next::Bad(LineError::Binary),
                Next::Bad(LineError::Binary),
                Next::Bad(LineError::TooLong(16)),
                Next::Line("c".into()),
            ]
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(split_timestamp("12.5 $X*00").unwrap(), (12.5, "$X*00"));
        assert!(split_timestamp("x $X").is_err());
        assert!(split_timestamp("-1 a").is_err());
    }
}
