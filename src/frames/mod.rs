//! Camera frames for the daemon: where they come from (a directory of PNG/JPEG files, raw RGB or
//! gray frames of a fixed size on a file, FIFO or stdin as GStreamer and ffmpeg pipe them, a V4L2
//! device behind the `v4l2` feature) and how they become model input (resize, normalize, NCHW).
//!
//! A frame that cannot be decoded is an error for that frame only; the source goes on with the
//! next one, and the daemon keeps running on its last good state.

#[cfg(all(feature = "v4l2", target_os = "linux"))]
pub mod v4l2;

use std::io::Read;
use std::path::{Path, PathBuf};

use tract_onnx::prelude::Tensor;

use crate::config::{FrameSource, InputToml, RawFormat};
use crate::image::Image;

/// One frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// File name, or `raw:<n>`.
    pub name: String,
    pub image: Image,
}

/// A frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// This frame is bad; the next may be fine.
    #[error("{name}: {reason}")]
    Bad { name: String, reason: String },
    /// The source itself failed.
    #[error("{}: {reason}", path.display())]
    Source { path: PathBuf, reason: String },
}

/// Something that yields frames until it ends.
pub trait Frames: Send {
    /// The next frame; `Ok(None)` at the end of the stream.
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError>;
}

/// Opens the configured source.
pub fn open(source: &FrameSource) -> Result<Box<dyn Frames>, FrameError> {
    match source {
        FrameSource::Dir(p) => Ok(Box::new(DirFrames::open(p)?)),
        FrameSource::Raw {
            path,
            width,
            height,
            format,
        } => Ok(Box::new(RawFrames::open(path, *width, *height, *format)?)),
        #[cfg(all(feature = "v4l2", target_os = "linux"))]
        FrameSource::V4l2 {
            path,
            width,
            height,
        } => Ok(Box::new(v4l2::V4l2Frames::open(path, *width, *height)?)),
        #[cfg(not(all(feature = "v4l2", target_os = "linux")))]
        FrameSource::V4l2 { path, .. } => Err(FrameError::Source {
            path: path.clone(),
            reason: v4l2_unavailable(),
        }),
    }
}

#[cfg(not(all(feature = "v4l2", target_os = "linux")))]
fn v4l2_unavailable() -> String {
    "V4L2 capture is not built in (build with `--features v4l2`), or pipe the camera as raw frames instead, e.g. \
     `ffmpeg -f v4l2 -i /dev/video0 -vf scale=W:H -pix_fmt rgb24 -f rawvideo - | rwsd ...` \
     with frames.source = \"raw\" (see docs/deploy.md)"
        .into()
}

/// PNG/JPEG files of a directory, in name order.
pub struct DirFrames {
    files: std::vec::IntoIter<PathBuf>,
}

impl DirFrames {
    pub fn open(dir: &Path) -> Result<Self, FrameError> {
        let rd = std::fs::read_dir(dir).map_err(|e| FrameError::Source {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                    matches!(x.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                })
            })
            .collect();
        files.sort();
        Ok(DirFrames {
            files: files.into_iter(),
        })
    }
}

impl Frames for DirFrames {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(path) = self.files.next() else {
            return Ok(None);
        };
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let image = Image::open(&path).map_err(|e| FrameError::Bad {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        Ok(Some(Frame { name, image }))
    }
}

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
            channels: match format {
                RawFormat::Rgb24 => 3,
                RawFormat::Gray8 => 1,
            },
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

/// Resizes (bilinear) to the model's input, normalizes `(x - mean) / std` per channel and lays
/// the frame out as `[1, 3, H, W]`.
pub fn to_input(image: &Image, input: &InputToml) -> Result<Tensor, FrameError> {
    let (h, w) = (input.height, input.width);
    let resized;
    let img = if image.height == h && image.width == w {
        image
    } else {
        let planes: Vec<Vec<f32>> = (0..3)
            .map(|c| {
                crate::corrupt::resize_linear(&image.channel(c), image.height, image.width, h, w)
            })
            .collect();
        resized = Image::from_planes(h, w, [&planes[0], &planes[1], &planes[2]]);
        &resized
    };
    let mut chw = vec![0f32; 3 * h * w];
    for (i, px) in img.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * h * w + i] = (px[c] - input.mean[c]) / input.std[c];
        }
    }
    Tensor::from_shape(&[1, 3, h, w], &chw).map_err(|e| FrameError::Bad {
        name: "input".into(),
        reason: e.to_string(),
    })
}
