//! V4L2 capture (cargo feature `v4l2`, Linux): a camera device read with memory-mapped streaming
//! I/O, the way every UVC webcam and most CSI bridges support it, through the kernel's ioctl
//! interface directly (no libv4l, no bindgen, so it cross-compiles like the rest).
//!
//! Formats accepted from the driver: YUYV 4:2:2 (what UVC webcams give), RGB24 and GREY; the
//! requested size is a hint the driver may round, and frames are resized to the model's input
//! afterwards anyway. Struct layouts mirror `linux/videodev2.h`; ioctl numbers are computed from
//! their sizes, so they follow the target's pointer and `time_t` widths.

use std::ffi::CString;
use std::os::raw::{c_int, c_ulong, c_void};
use std::path::{Path, PathBuf};

use super::{Frame, FrameError, Frames};
use crate::image::Image;

const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
const MEMORY_MMAP: u32 = 1;
const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
const CAP_STREAMING: u32 = 0x0400_0000;
const BUFFERS: u32 = 4;

const fn fourcc(a: u8, b: u8, c: u8, d: u8) -> u32 {
    (a as u32) | (b as u32) << 8 | (c as u32) << 16 | (d as u32) << 24
}
const PIX_YUYV: u32 = fourcc(b'Y', b'U', b'Y', b'V');
const PIX_RGB24: u32 = fourcc(b'R', b'G', b'B', b'3');
const PIX_GREY: u32 = fourcc(b'G', b'R', b'E', b'Y');

#[repr(C)]
struct Capability {
    driver: [u8; 16],
    card: [u8; 32],
    bus_info: [u8; 32],
    version: u32,
    capabilities: u32,
    device_caps: u32,
    reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct PixFormat {
    width: u32,
    height: u32,
    pixelformat: u32,
    field: u32,
    bytesperline: u32,
    sizeimage: u32,
    colorspace: u32,
    priv_: u32,
    flags: u32,
    enc: u32,
    quantization: u32,
    xfer_func: u32,
}

#[repr(C)]
union FormatUnion {
    pix: PixFormat,
    raw: [u8; 200],
    // The kernel's union holds pointers (v4l2_window): pointer alignment.
    _align: [usize; 0],
}

#[repr(C)]
struct Format {
    type_: u32,
    fmt: FormatUnion,
}

#[repr(C)]
struct RequestBuffers {
    count: u32,
    type_: u32,
    memory: u32,
    capabilities: u32,
    flags: u8,
    reserved: [u8; 3],
}

#[repr(C)]
struct Timecode {
    type_: u32,
    flags: u32,
    frames: u8,
    seconds: u8,
    minutes: u8,
    hours: u8,
    userbits: [u8; 4],
}

#[repr(C)]
union BufferM {
    offset: u32,
    userptr: c_ulong,
    planes: *mut c_void,
    fd: i32,
}

#[repr(C)]
struct Buffer {
    index: u32,
    type_: u32,
    bytesused: u32,
    flags: u32,
    field: u32,
    timestamp: libc::timeval,
    timecode: Timecode,
    sequence: u32,
    memory: u32,
    m: BufferM,
    length: u32,
    reserved2: u32,
    request_fd: i32,
}

const fn ioc(dir: c_ulong, nr: c_ulong, size: usize) -> c_ulong {
    (dir << 30) | ((size as c_ulong) << 16) | ((b'V' as c_ulong) << 8) | nr
}
const READ: c_ulong = 2;
const WRITE: c_ulong = 1;
const QUERYCAP: c_ulong = ioc(READ, 0, std::mem::size_of::<Capability>());
const S_FMT: c_ulong = ioc(READ | WRITE, 5, std::mem::size_of::<Format>());
const REQBUFS: c_ulong = ioc(READ | WRITE, 8, std::mem::size_of::<RequestBuffers>());
const QUERYBUF: c_ulong = ioc(READ | WRITE, 9, std::mem::size_of::<Buffer>());
const QBUF: c_ulong = ioc(READ | WRITE, 15, std::mem::size_of::<Buffer>());
const DQBUF: c_ulong = ioc(READ | WRITE, 17, std::mem::size_of::<Buffer>());
const STREAMON: c_ulong = ioc(WRITE, 18, std::mem::size_of::<c_int>());
const STREAMOFF: c_ulong = ioc(WRITE, 19, std::mem::size_of::<c_int>());

/// A mapped driver buffer.
struct Mapped {
    ptr: *mut c_void,
    len: usize,
}

/// An open, streaming V4L2 capture device.
pub struct V4l2Frames {
    path: PathBuf,
    fd: c_int,
    buffers: Vec<Mapped>,
    width: usize,
    height: usize,
    pixelformat: u32,
    bytesperline: usize,
    count: u64,
}

// SAFETY: the mapped buffers are owned by this value alone and only touched through `&mut self`.
unsafe impl Send for V4l2Frames {}

fn zeroed<T>() -> T {
    // SAFETY: only used for the plain-old-data ioctl structs above, for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

impl V4l2Frames {
    fn err(&self, what: &str) -> FrameError {
        FrameError::Source {
            path: self.path.clone(),
            reason: format!("{what}: {}", std::io::Error::last_os_error()),
        }
    }

    fn ioctl<T>(&self, request: c_ulong, arg: &mut T, what: &str) -> Result<(), FrameError> {
        loop {
            // SAFETY: `arg` is a live, correctly laid out struct for `request` (sizes are encoded
            // in the request number), and `fd` is open.
            let r = unsafe { libc::ioctl(self.fd, request as libc::Ioctl, arg as *mut T) };
            if r == 0 {
                return Ok(());
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(self.err(what));
            }
        }
    }

    /// Opens `path`, asks for `width`×`height` (the driver may pick the nearest size) and starts
    /// streaming.
    pub fn open(path: &Path, width: usize, height: usize) -> Result<Self, FrameError> {
        let c =
            CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| FrameError::Source {
                path: path.to_path_buf(),
                reason: "path contains a NUL byte".into(),
            })?;
        // SAFETY: `c` is a valid NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        let mut dev = V4l2Frames {
            path: path.to_path_buf(),
            fd,
            buffers: Vec::new(),
            width,
            height,
            pixelformat: 0,
            bytesperline: 0,
            count: 0,
        };
        if fd < 0 {
            return Err(dev.err("open"));
        }
        let mut cap: Capability = zeroed();
        dev.ioctl(QUERYCAP, &mut cap, "VIDIOC_QUERYCAP (not a V4L2 device?)")?;
        let caps = if cap.device_caps != 0 {
            cap.device_caps
        } else {
            cap.capabilities
        };
        if caps & CAP_VIDEO_CAPTURE == 0 || caps & CAP_STREAMING == 0 {
            return Err(FrameError::Source {
                path: dev.path.clone(),
                reason: "device cannot capture with streaming I/O".into(),
            });
        }
        dev.set_format(width, height)?;
        dev.map_buffers()?;
        let mut t = BUF_TYPE_VIDEO_CAPTURE as c_int;
        dev.ioctl(STREAMON, &mut t, "VIDIOC_STREAMON")?;
        Ok(dev)
    }

    fn set_format(&mut self, width: usize, height: usize) -> Result<(), FrameError> {
        let mut f: Format = zeroed();
        f.type_ = BUF_TYPE_VIDEO_CAPTURE;
        f.fmt.pix = PixFormat {
            width: width as u32,
            height: height as u32,
            pixelformat: PIX_YUYV,
            ..unsafe_pix_zero()
        };
        self.ioctl(S_FMT, &mut f, "VIDIOC_S_FMT")?;
        // SAFETY: the driver filled the `pix` member for a video capture format.
        let pix = unsafe { f.fmt.pix };
        if ![PIX_YUYV, PIX_RGB24, PIX_GREY].contains(&pix.pixelformat) {
            let code = pix.pixelformat.to_le_bytes();
            return Err(FrameError::Source {
                path: self.path.clone(),
                reason: format!(
                    "driver offers pixel format {}, rws reads YUYV, RGB3 or GREY",
                    String::from_utf8_lossy(&code)
                ),
            });
        }
        self.width = pix.width as usize;
        self.height = pix.height as usize;
        self.pixelformat = pix.pixelformat;
        let bpp = if pix.pixelformat == PIX_RGB24 {
            3
        } else if pix.pixelformat == PIX_YUYV {
            2
        } else {
            1
        };
        self.bytesperline = (pix.bytesperline as usize).max(self.width * bpp);
        Ok(())
    }

    fn map_buffers(&mut self) -> Result<(), FrameError> {
        let mut req: RequestBuffers = zeroed();
        req.count = BUFFERS;
        req.type_ = BUF_TYPE_VIDEO_CAPTURE;
        req.memory = MEMORY_MMAP;
        self.ioctl(REQBUFS, &mut req, "VIDIOC_REQBUFS")?;
        for index in 0..req.count {
            let mut b: Buffer = zeroed();
            b.index = index;
            b.type_ = BUF_TYPE_VIDEO_CAPTURE;
            b.memory = MEMORY_MMAP;
            self.ioctl(QUERYBUF, &mut b, "VIDIOC_QUERYBUF")?;
            // SAFETY: the offset and length come from the driver for this buffer; the mapping is
            // shared read-only and unmapped in Drop.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    b.length as usize,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    self.fd,
                    b.m.offset as libc::off_t,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(self.err("mmap"));
            }
            self.buffers.push(Mapped {
                ptr,
                len: b.length as usize,
            });
            self.ioctl(QBUF, &mut b, "VIDIOC_QBUF")?;
        }
        Ok(())
    }

    fn convert(&self, data: &[u8]) -> Result<Image, String> {
        let (w, h, stride) = (self.width, self.height, self.bytesperline);
        if data.len() < stride * h.saturating_sub(1) + w {
            return Err(format!(
                "frame has {} bytes, {w}x{h} needs more",
                data.len()
            ));
        }
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            let row = &data[y * stride..];
            match self.pixelformat {
                PIX_RGB24 => rgb.extend_from_slice(&row[..w * 3]),
                PIX_GREY => row[..w]
                    .iter()
                    .for_each(|&g| rgb.extend_from_slice(&[g, g, g])),
                _ => {
                    for x in 0..w {
                        let (yy, u, v) = (row[2 * x], row[4 * (x / 2) + 1], row[4 * (x / 2) + 3]);
                        rgb.extend_from_slice(&yuv_to_rgb(yy, u, v));
                    }
                }
            }
        }
        Image::from_u8(h, w, 3, &rgb).map_err(|e| e.to_string())
    }
}

fn unsafe_pix_zero() -> PixFormat {
    zeroed()
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
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let mut b: Buffer = zeroed();
        b.type_ = BUF_TYPE_VIDEO_CAPTURE;
        b.memory = MEMORY_MMAP;
        self.ioctl(DQBUF, &mut b, "VIDIOC_DQBUF")?;
        let name = format!("v4l2:{}", self.count);
        self.count += 1;
        let image = match self.buffers.get(b.index as usize) {
            Some(m) => {
                let used = (b.bytesused as usize).min(m.len);
                // SAFETY: the driver handed this buffer back (DQBUF) and will not write it until
                // it is queued again below; the mapping is `len` bytes long.
                let data = unsafe { std::slice::from_raw_parts(m.ptr as *const u8, used) };
                self.convert(data)
            }
            None => Err(format!("driver returned unknown buffer {}", b.index)),
        };
        self.ioctl(QBUF, &mut b, "VIDIOC_QBUF")?;
        match image {
            Ok(image) => Ok(Some(Frame { name, image })),
            Err(reason) => Err(FrameError::Bad { name, reason }),
        }
    }
}

impl Drop for V4l2Frames {
    fn drop(&mut self) {
        if self.fd >= 0 {
            let mut t = BUF_TYPE_VIDEO_CAPTURE as c_int;
            let _ = self.ioctl(STREAMOFF, &mut t, "VIDIOC_STREAMOFF");
        }
        for m in &self.buffers {
            // SAFETY: each mapping was made by mmap above with this length and is unmapped once.
            unsafe { libc::munmap(m.ptr, m.len) };
        }
        if self.fd >= 0 {
            // SAFETY: the descriptor is ours and closed once.
            unsafe { libc::close(self.fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<Capability>(), 104);
        assert_eq!(std::mem::size_of::<PixFormat>(), 48);
        assert_eq!(std::mem::size_of::<RequestBuffers>(), 20);
        if cfg!(target_pointer_width = "64") {
            assert_eq!(std::mem::size_of::<Format>(), 208);
            assert_eq!(std::mem::size_of::<Buffer>(), 88);
            assert_eq!(QUERYCAP, 0x8068_5600);
            assert_eq!(S_FMT, 0xc0d0_5605);
            assert_eq!(DQBUF, 0xc058_5611);
        } else {
            assert_eq!(std::mem::size_of::<Format>(), 204);
        }
    }

    #[test]
    fn missing_device_is_a_clear_error() {
        let e = V4l2Frames::open(Path::new("/dev/rws-no-such-video"), 32, 32)
            .err()
            .unwrap();
        assert!(e.to_string().contains("/dev/rws-no-such-video"), "{e}");
    }

    #[test]
    fn yuv_white_black() {
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
    }
}
