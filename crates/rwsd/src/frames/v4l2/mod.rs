//! V4L2 capture (cargo feature `v4l2`, Linux): a camera device read with memory-mapped streaming
//! I/O, the way every UVC webcam and most CSI bridges support it, through the kernel's ioctl
//! interface directly (no libv4l, no bindgen, so it cross-compiles like the rest).
//!
//! Formats accepted from the driver: YUYV 4:2:2 (what UVC webcams give), RGB24 and GREY; the
//! requested size is a hint the driver may round, and frames are resized to the model's input
//! afterwards anyway. All `unsafe` is in [`sys`], behind typed wrappers.

mod sys;

use std::fs::File;
use std::os::fd::AsFd;
use std::os::raw::c_int;
use std::path::{Path, PathBuf};

use rws_image::Image;

use super::{Frame, FrameError, FrameName, Frames};
use crate::source::{self, Stop};
use sys::{Buffer, Capability, Format, Mapping, PixFormat, RequestBuffers, Zeroed};

const BUFFERS: u32 = 4;

/// An open, streaming V4L2 capture device.
pub struct V4l2Frames {
    path: PathBuf,
    // Declared before `file`: buffers are unmapped before the descriptor closes.
    buffers: Vec<Mapping>,
    file: File,
    width: usize,
    height: usize,
    pixelformat: u32,
    bytesperline: usize,
    count: u64,
    /// 8-bit RGB staging for the conversion, reused from frame to frame.
    rgb: Vec<u8>,
    stop: Stop,
}

impl V4l2Frames {
    fn err(&self, what: &str, e: std::io::Error) -> FrameError {
        FrameError::Source {
            path: self.path.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    fn ioctl<R: sys::Request>(&self, arg: &mut R::Arg, what: &str) -> Result<(), FrameError> {
        sys::ioctl::<R>(self.file.as_fd(), arg).map_err(|e| self.err(what, e))
    }

    /// Opens `path`, asks for `width`×`height` (the driver may pick the nearest size) and starts
    /// streaming.
    pub fn open(path: &Path, width: usize, height: usize, stop: &Stop) -> Result<Self, FrameError> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| FrameError::Source {
                path: path.to_path_buf(),
                reason: format!("open: {e}"),
            })?;
        let mut dev = V4l2Frames {
            path: path.to_path_buf(),
            buffers: Vec::new(),
            file,
            width,
            height,
            pixelformat: 0,
            bytesperline: 0,
            count: 0,
            rgb: Vec::new(),
            stop: stop.clone(),
        };
        let mut cap = Capability::zeroed();
        dev.ioctl::<sys::QueryCap>(&mut cap, "VIDIOC_QUERYCAP (not a V4L2 device?)")?;
        let caps = if cap.device_caps != 0 {
            cap.device_caps
        } else {
            cap.capabilities
        };
        if caps & sys::CAP_VIDEO_CAPTURE == 0 || caps & sys::CAP_STREAMING == 0 {
            return Err(FrameError::Source {
                path: dev.path.clone(),
                reason: "device cannot capture with streaming I/O".into(),
            });
        }
        dev.set_format(width, height)?;
        dev.map_buffers()?;
        let mut t = sys::BUF_TYPE_VIDEO_CAPTURE as c_int;
        dev.ioctl::<sys::StreamOn>(&mut t, "VIDIOC_STREAMON")?;
        Ok(dev)
    }

    fn set_format(&mut self, width: usize, height: usize) -> Result<(), FrameError> {
        let mut f = Format::capture(PixFormat {
            width: width as u32,
            height: height as u32,
            pixelformat: sys::PIX_YUYV,
            ..PixFormat::zeroed()
        });
        self.ioctl::<sys::SetFormat>(&mut f, "VIDIOC_S_FMT")?;
        let pix = f.pix();
        let Some(bpp) = bytes_per_pixel(pix.pixelformat) else {
            let code = pix.pixelformat.to_le_bytes();
            return Err(FrameError::Source {
                path: self.path.clone(),
                reason: format!(
                    "driver offers pixel format {}, rws reads YUYV, RGB3 or GREY",
                    String::from_utf8_lossy(&code)
                ),
            });
        };
        self.width = pix.width as usize;
        self.height = pix.height as usize;
        self.pixelformat = pix.pixelformat;
        self.bytesperline = (pix.bytesperline as usize).max(self.width * bpp);
        Ok(())
    }

    fn map_buffers(&mut self) -> Result<(), FrameError> {
        let mut req = RequestBuffers::zeroed();
        req.count = BUFFERS;
        req.type_ = sys::BUF_TYPE_VIDEO_CAPTURE;
        req.memory = sys::MEMORY_MMAP;
        self.ioctl::<sys::RequestBufs>(&mut req, "VIDIOC_REQBUFS")?;
        for index in 0..req.count {
            let mut b = Buffer::mmap_capture(index);
            self.ioctl::<sys::QueryBuf>(&mut b, "VIDIOC_QUERYBUF")?;
            let m = Mapping::new(self.file.as_fd(), &b).map_err(|e| self.err("mmap", e))?;
            self.buffers.push(m);
            self.ioctl::<sys::QueueBuf>(&mut b, "VIDIOC_QBUF")?;
        }
        Ok(())
    }
}

/// Bytes per pixel of the formats rws reads; `None` for others.
fn bytes_per_pixel(pixelformat: u32) -> Option<usize> {
    match pixelformat {
        sys::PIX_RGB24 => Some(3),
        sys::PIX_YUYV => Some(2),
        sys::PIX_GREY => Some(1),
        _ => None,
    }
}

/// One captured buffer as an RGB image. Every row must be whole: the last row needs
/// `width × bytes per pixel` bytes after its start (a short buffer is a bad frame, not a panic).
#[cfg(test)]
fn convert(
    data: &[u8],
    pixelformat: u32,
    size: (usize, usize),
    stride: usize,
) -> Result<Image, String> {
    let mut image = Image::new(0, 0);
    convert_into(data, pixelformat, size, stride, &mut Vec::new(), &mut image)?;
    Ok(image)
}

/// [`convert`] into reused buffers: `rgb` (the 8-bit staging row data) and `out`.
fn convert_into(
    data: &[u8],
    pixelformat: u32,
    (w, h): (usize, usize),
    stride: usize,
    rgb: &mut Vec<u8>,
    out: &mut Image,
) -> Result<(), String> {
    let bpp = bytes_per_pixel(pixelformat).ok_or("unknown pixel format")?;
    let row_bytes = w * bpp;
    let needed = stride * h.saturating_sub(1) + row_bytes;
    if h == 0 || w == 0 || stride < row_bytes || data.len() < needed {
        return Err(format!(
            "frame has {} bytes, {w}x{h} with {stride}-byte rows needs {needed}",
            data.len()
        ));
    }
    rgb.clear();
    for y in 0..h {
        let row = &data[y * stride..y * stride + row_bytes];
        match pixelformat {
            sys::PIX_RGB24 => rgb.extend_from_slice(row),
            sys::PIX_GREY => row.iter().for_each(|&g| rgb.extend_from_slice(&[g, g, g])),
            _ => {
                for x in 0..w {
                    let (yy, u, v) = (row[2 * x], row[4 * (x / 2) + 1], row[4 * (x / 2) + 3]);
                    rgb.extend_from_slice(&yuv_to_rgb(yy, u, v));
                }
            }
        }
    }
    out.fill_from_u8(h, w, 3, rgb).map_err(|e| e.to_string())
}

/// BT.601 limited range, as UVC cameras send.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = f32::from(y) - 16.0;
    let d = f32::from(u) - 128.0;
    let e = f32::from(v) - 128.0;
    let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    [
        clamp(1.164 * c + 1.596 * e),
        clamp(1.164 * c - 0.392 * d - 0.813 * e),
        clamp(1.164 * c + 2.017 * d),
    ]
}

impl Frames for V4l2Frames {
    fn next_frame(&mut self, spare: Option<Image>) -> Result<Option<Frame>, FrameError> {
        // DQBUF would block for as long as the camera stalls: wait in ticks instead.
        loop {
            if self.stop.stopped() {
                return Ok(None);
            }
            let ready = source::wait_readable(self.file.as_fd(), source::TICK)
                .map_err(|e| self.err("poll", e))?;
            if ready {
                break;
            }
        }
        let mut b = Buffer::mmap_capture(0);
        self.ioctl::<sys::DequeueBuf>(&mut b, "VIDIOC_DQBUF")?;
        let name = FrameName::Seq {
            source: "v4l2",
            n: self.count,
        };
        self.count += 1;
        let mut image = spare.unwrap_or_else(|| Image::new(0, 0));
        let converted = match self.buffers.get(b.index as usize) {
            // The driver does not write this buffer until it is queued again below.
            Some(m) => convert_into(
                m.bytes(b.bytesused as usize),
                self.pixelformat,
                (self.width, self.height),
                self.bytesperline,
                &mut self.rgb,
                &mut image,
            ),
            None => Err(format!("driver returned unknown buffer {}", b.index)),
        };
        self.ioctl::<sys::QueueBuf>(&mut b, "VIDIOC_QBUF")?;
        match converted {
            Ok(()) => Ok(Some(Frame { name, image })),
            Err(reason) => Err(FrameError::Bad {
                name: name.to_string(),
                reason,
            }),
        }
    }
}

impl Drop for V4l2Frames {
    fn drop(&mut self) {
        let mut t = sys::BUF_TYPE_VIDEO_CAPTURE as c_int;
        let _ = self.ioctl::<sys::StreamOff>(&mut t, "VIDIOC_STREAMOFF");
        // The mappings are unmapped (field order), then the file is closed.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_a_clear_error() {
        let e = V4l2Frames::open(Path::new("/dev/rws-no-such-video"), 32, 32, &Stop::new())
            .err()
            .unwrap();
        assert!(e.to_string().contains("/dev/rws-no-such-video"), "{e}");
    }

    #[test]
    fn yuv_white_black() {
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
    }

    #[test]
    fn short_buffers_are_bad_frames_for_every_format() {
        // 4×2 frames with rows padded to 16 bytes: the last row needs w × bpp bytes.
        for (fmt, bpp) in [(sys::PIX_RGB24, 3), (sys::PIX_YUYV, 2), (sys::PIX_GREY, 1)] {
            let whole = vec![128u8; 16 + 4 * bpp];
            assert!(convert(&whole, fmt, (4, 2), 16).is_ok());
            let short = &whole[..16 + 4 * bpp - 1];
            let e = convert(short, fmt, (4, 2), 16).unwrap_err();
            assert!(e.contains("needs"), "{e}");
        }
        // A stride shorter than a row is refused too.
        assert!(convert(&[0u8; 64], sys::PIX_RGB24, (4, 2), 8).is_err());
    }
}
