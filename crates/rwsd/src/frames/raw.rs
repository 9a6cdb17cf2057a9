//! Raw frames of a fixed size (`rgb24` or `gray8`) from a file, FIFO or stdin, as GStreamer and
//! ffmpeg pipe them. FIFOs and stdin are read with the [`crate::source`] tick: a stalled camera
//! leaves the reader waiting in steps of [`crate::source::TICK`], stoppable at each; one frame
//! buffer is reused from frame to frame.

use std::io::Read;
use std::path::{Path, PathBuf};

use rws_image::Image;

use super::{Frame, FrameError, FrameName, Frames};
use crate::config::RawFormat;
use crate::source::{self, Stop};

/// Fixed-size raw frames (`rgb24` or `gray8`) from a file, FIFO or stdin (`-`).
pub struct RawFrames {
    reader: Box<dyn Read + Send>,
    width: usize,
    height: usize,
    channels: usize,
    count: u64,
    path: PathBuf,
    buf: Vec<u8>,
    stop: Stop,
}

impl RawFrames {
    /// Opens `path` (`-`: stdin): a FIFO without waiting for its writer, a regular file as is.
    pub fn open(
        path: &Path,
        width: usize,
        height: usize,
        format: RawFormat,
        stop: &Stop,
    ) -> Result<Self, FrameError> {
        let err = |e: std::io::Error| FrameError::Source {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let reader: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(source::stdin().map_err(err)?)
        } else if is_fifo(path) {
            Box::new(source::open_fifo(path).map_err(err)?)
        } else {
            Box::new(std::fs::File::open(path).map_err(err)?)
        };
        Ok(Self::from_reader(reader, path, width, height, format, stop))
    }

    pub fn from_reader(
        reader: Box<dyn Read + Send>,
        path: &Path,
        width: usize,
        height: usize,
        format: RawFormat,
        stop: &Stop,
    ) -> Self {
        RawFrames {
            reader,
            width,
            height,
            channels: format.channels(),
            count: 0,
            path: path.to_path_buf(),
            buf: Vec::new(),
            stop: stop.clone(),
        }
    }
}

/// Whether `path` is a FIFO (a named pipe a camera pipeline writes).
pub fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

impl Frames for RawFrames {
    fn next_frame(&mut self, spare: Option<Image>) -> Result<Option<Frame>, FrameError> {
        let len = self.width * self.height * self.channels;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(len, 0);
        let result = self.fill(&mut buf);
        self.buf = buf;
        match result? {
            false => Ok(None),
            true => self.frame(spare),
        }
    }
}

impl RawFrames {
    /// Fills `buf` with one frame: `Ok(false)` at the end of the stream between frames (or when
    /// stopped), a bad frame when it ends inside one.
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, FrameError> {
        let len = buf.len();
        let mut filled = 0;
        while filled < len {
            if self.stop.stopped() {
                return Ok(false);
            }
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => {
                    let name = format!("raw:{}", self.count);
                    self.count += 1;
                    return Err(FrameError::Bad {
                        name,
                        reason: format!("stream ended {filled} bytes into a {len}-byte frame"),
                    });
                }
                Ok(n) => filled += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    return Err(FrameError::Source {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        Ok(true)
    }

    /// Decodes the filled buffer into `spare` (or a new image the first times).
    fn frame(&mut self, spare: Option<Image>) -> Result<Option<Frame>, FrameError> {
        let name = FrameName::Seq {
            source: "raw",
            n: self.count,
        };
        self.count += 1;
        let mut image = spare.unwrap_or_else(|| Image::new(0, 0));
        image
            .fill_from_u8(self.height, self.width, self.channels, &self.buf)
            .map_err(|e| FrameError::Bad {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Some(Frame { name, image }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_decoded_into_the_spare_image_without_a_new_buffer() {
        let bytes: Vec<u8> = (0..2 * 4 * 3 * 3).map(|i| i as u8).collect();
        let mut raw = RawFrames::from_reader(
            Box::new(std::io::Cursor::new(bytes)),
            Path::new("mem"),
            3,
            4,
            RawFormat::Rgb24,
            &Stop::new(),
        );
        let first = raw.next_frame(None).unwrap().unwrap();
        assert_eq!(first.name.to_string(), "raw:0");
        assert_eq!(first.image.data[5], 5.0 / 255.0);
        let buffer = first.image.data.as_ptr();
        let second = raw.next_frame(Some(first.image)).unwrap().unwrap();
        assert_eq!(
            second.image.data.as_ptr(),
            buffer,
            "the spare's buffer is reused"
        );
        assert_eq!(second.image.data[0], 36.0 / 255.0);
        assert_eq!(second.name.to_string(), "raw:1");
        // The stream ends between frames: the end, not a bad frame.
        assert!(raw.next_frame(Some(second.image)).unwrap().is_none());
    }
}
