//! Frames from a directory of PNG/JPEG files, in name order (the demo, recorded test sets).

use std::path::{Path, PathBuf};

use rws_image::Image;

use super::{Frame, FrameError, FrameName, Frames};

/// PNG/JPEG files of a directory, in name order.
pub struct DirFrames {
    files: std::vec::IntoIter<PathBuf>,
    max_pixels: u64,
}

impl DirFrames {
    /// Lists `dir`; files whose images have more than `max_pixels` pixels are bad frames
    /// (refused from their header, before any decoding).
    pub fn open(dir: &Path, max_pixels: u64) -> Result<Self, FrameError> {
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
            max_pixels,
        })
    }
}

impl Frames for DirFrames {
    fn next_frame(&mut self, _spare: Option<Image>) -> Result<Option<Frame>, FrameError> {
        // Decoding a PNG/JPEG allocates its own image (a directory is the demo and recorded
        // test sets, not a camera).
        let Some(path) = self.files.next() else {
            return Ok(None);
        };
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let image = Image::open_limited(&path, self.max_pixels).map_err(|e| FrameError::Bad {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        Ok(Some(Frame {
            name: FrameName::File(name),
            image,
        }))
    }
}
