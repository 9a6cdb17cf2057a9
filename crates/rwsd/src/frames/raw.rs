//! Raw frames of a fixed size (`rgb24` or `gray8`) from a file, FIFO or stdin, as GStreamer and
//! ffmpeg pipe them.

use std::io::Read;
use std::path::{Path, PathBuf};

use rws_image::Image;

use super::{Frame, FrameError, Frames};
use crate::config::RawFormat;

/// Fixed-size raw frames (`rgb24` or `gray8`) from a file, FIFO or stdin (`-`).
pub struct RawFrames {
    reader: Box<dyn Read + Send>,
    width: usize,
    height: usize,
    channels: usize,
    count: u64,
    path: PathBuf,
}

impl RawFrames {
    pub fn open(
        path: &Path,
        width: usize,
        height: usize,
        format: RawFormat,
    ) -> Result<Self, FrameError> {
        let reader: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(path).map_err(|e| FrameError::Source {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?)
        };
        Ok(Self::from_reader(reader, path, width, height, format))
    }

    pub fn from_reader(
        reader: Box<dyn Read + Send>,
        path: &Path,
        width: usize,
        height: usize,
        format: RawFormat,
    ) -> Self {
        RawFrames {
            reader,
            width,
            height,
            channels: format.channels(),
            count: 0,
            path: path.to_path_buf(),
        }
    }
}

impl Frames for RawFrames {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let len = self.width * self.height * self.channels;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => {
                    return Err(FrameError::Bad {
                        name: format!("raw:{}", self.count),
                        reason: format!("stream ended {filled} bytes into a {len}-byte frame"),
                    })
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(FrameError::Source {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        let name = format!("raw:{}", self.count);
        self.count += 1;
        let image = Image::from_u8(self.height, self.width, self.channels, &buf).map_err(|e| {
            FrameError::Bad {
                name: name.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(Some(Frame { name, image }))
    }
}
