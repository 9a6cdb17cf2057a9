//! Camera frames for the daemon: where they come from (a directory of PNG/JPEG files, raw RGB or
//! gray frames of a fixed size on a file, FIFO or stdin as GStreamer and ffmpeg pipe them, a V4L2
//! device behind the `v4l2` feature) and how they become model input (resize, normalize, NCHW).
//!
//! A frame that cannot be decoded is an error for that frame only; the source goes on with the
//! next one, and the daemon keeps running on its last good state.

mod dir;
mod raw;
#[cfg(all(feature = "v4l2", target_os = "linux"))]
pub mod v4l2;

use std::path::PathBuf;

use rws_image::Image;

use crate::config::{FrameSource, Input};
use crate::source::{Lifetime, Stop};

pub use dir::DirFrames;
pub use raw::RawFrames;

/// One frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub name: FrameName,
    pub image: Image,
}

/// What a frame is called on its output line: a file's name, or the source's kind and the
/// frame's number (`raw:12`, `v4l2:7`), which is formatted as the line is written rather than
/// kept as a string per frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameName {
    File(String),
    Seq { source: &'static str, n: u64 },
}

impl std::fmt::Display for FrameName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameName::File(s) => f.write_str(s),
            FrameName::Seq { source, n } => write!(f, "{source}:{n}"),
        }
    }
}

impl serde::Serialize for FrameName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
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
    /// The next frame; `Ok(None)` at the end of the stream. `spare` is an image the frame loop
    /// is done with: a source that fills a buffer (raw, V4L2) decodes into it instead of
    /// allocating one per frame.
    fn next_frame(&mut self, spare: Option<Image>) -> Result<Option<Frame>, FrameError>;
}

impl FrameSource {
    /// Whether the source ends at its end (a directory, a file, stdin) or is reopened when it
    /// fails or its writer goes away (a FIFO, a camera).
    pub fn lifetime(&self) -> Lifetime {
        match self {
            FrameSource::Dir(_) => Lifetime::ReadOnce,
            FrameSource::Raw { path, .. } if raw::is_fifo(path) => Lifetime::Reconnect,
            FrameSource::Raw { .. } => Lifetime::ReadOnce,
            FrameSource::V4l2 { .. } => Lifetime::Reconnect,
        }
    }
}

/// Opens the configured source. Reads return within a tick of `stop` being set; decoded
/// images have at most `max_pixels` pixels.
pub fn open(
    source: &FrameSource,
    stop: &Stop,
    max_pixels: u64,
) -> Result<Box<dyn Frames>, FrameError> {
    match source {
        FrameSource::Dir(p) => Ok(Box::new(DirFrames::open(p, max_pixels)?)),
        FrameSource::Raw {
            path,
            width,
            height,
            format,
        } => Ok(Box::new(RawFrames::open(
            path, *width, *height, *format, stop,
        )?)),
        #[cfg(all(feature = "v4l2", target_os = "linux"))]
        FrameSource::V4l2 {
            path,
            width,
            height,
        } => Ok(Box::new(v4l2::V4l2Frames::open(
            path, *width, *height, stop,
        )?)),
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

/// Resizes (bilinear) a frame to the model's input, normalizes `(x - mean) / std` per channel and
/// lays it out as `[3, H, W]` planes in `out`, in one pass; `prep` keeps the resize tables and
/// `out` is reused from frame to frame.
pub fn to_input(
    prep: &mut rws_image::tensor::ToInput,
    image: &Image,
    input: &Input,
    out: &mut Vec<f32>,
) -> Result<(), FrameError> {
    prep.run(image, (input.height, input.width), &input.norm, out)
        .map_err(|e| FrameError::Bad {
            name: "input".into(),
            reason: e.to_string(),
        })
}
