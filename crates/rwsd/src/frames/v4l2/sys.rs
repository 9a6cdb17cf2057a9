//! The kernel side of V4L2, and every `unsafe` of the capture code, behind types that make misuse
//! impossible from safe code:
//! - the structs of `linux/videodev2.h` the capture needs, `#[repr(C)]`, each constructed zeroed
//!   through [`Zeroed`] (implemented, unsafely, only for these plain-old-data structs);
//! - one type per ioctl request ([`Request`]): the request number is computed from the size of
//!   the one argument type the request takes, so [`ioctl`] cannot pass the wrong struct;
//! - [`Mapping`], a driver buffer mapped read-only, unmapped on drop, read only as bytes within
//!   its length.
//!
//! Struct layouts mirror the kernel's; ioctl numbers follow the target's pointer and `time_t`
//! widths because they are computed from the struct sizes (tests check the x86-64/aarch64 values).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::raw::{c_int, c_ulong, c_void};

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const MEMORY_MMAP: u32 = 1;
pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const CAP_STREAMING: u32 = 0x0400_0000;

const fn fourcc(a: u8, b: u8, c: u8, d: u8) -> u32 {
    (a as u32) | (b as u32) << 8 | (c as u32) << 16 | (d as u32) << 24
}
pub const PIX_YUYV: u32 = fourcc(b'Y', b'U', b'Y', b'V');
pub const PIX_RGB24: u32 = fourcc(b'R', b'G', b'B', b'3');
pub const PIX_GREY: u32 = fourcc(b'G', b'R', b'E', b'Y');

/// Types for which all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for `#[repr(C)]` plain-old-data types (integers, arrays of them, raw pointers,
/// unions and structs of such): every field must accept the all-zero bit pattern.
pub unsafe trait Zeroed: Sized {
    fn zeroed() -> Self {
        // SAFETY: the trait's contract says all-zero is a valid value of `Self`.
        unsafe { std::mem::zeroed() }
    }
}

/// `struct v4l2_capability`.
#[repr(C)]
pub struct Capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

/// `struct v4l2_pix_format`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PixFormat {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

#[repr(C)]
union FormatUnion {
    pix: PixFormat,
    raw: [u8; 200],
    // The kernel's union holds pointers (v4l2_window): pointer alignment.
    _align: [usize; 0],
}

/// `struct v4l2_format`, for video capture only: the union is reached through [`Format::pix`].
#[repr(C)]
pub struct Format {
    type_: u32,
    fmt: FormatUnion,
}

impl Format {
    /// A video-capture format request for `pix`.
    pub fn capture(pix: PixFormat) -> Self {
        let mut f = Format::zeroed();
        f.type_ = BUF_TYPE_VIDEO_CAPTURE;
        f.fmt.pix = pix;
        f
    }

    /// The pixel format the driver chose.
    pub fn pix(&self) -> PixFormat {
        // SAFETY: every bit pattern is a valid `PixFormat` (plain u32 fields), and the union is
        // at least as large as it, so reading this member is always defined; for a video
        // capture format it is the member the driver filled.
        unsafe { self.fmt.pix }
    }
}

/// `struct v4l2_requestbuffers`.
#[repr(C)]
pub struct RequestBuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
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

/// `struct v4l2_buffer`, for memory-mapped capture buffers.
#[repr(C)]
pub struct Buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    flags: u32,
    field: u32,
    timestamp: libc::timeval,
    timecode: Timecode,
    sequence: u32,
    pub memory: u32,
    m: BufferM,
    pub length: u32,
    reserved2: u32,
    request_fd: i32,
}

impl Buffer {
    /// A memory-mapped video-capture buffer descriptor for buffer `index`.
    pub fn mmap_capture(index: u32) -> Self {
        let mut b = Buffer::zeroed();
        b.index = index;
        b.type_ = BUF_TYPE_VIDEO_CAPTURE;
        b.memory = MEMORY_MMAP;
        b
    }

    /// The mapping offset the driver gave this buffer (QUERYBUF).
    pub fn offset(&self) -> u32 {
        // SAFETY: the union's members are plain integers or a pointer, each valid for every bit
        // pattern; for MMAP buffers `offset` is the member the driver fills.
        unsafe { self.m.offset }
    }
}

// SAFETY: all of these are #[repr(C)] structs and unions of integers, integer arrays, a raw
// pointer and `libc::timeval` (two integers); all-zero is valid for every field.
unsafe impl Zeroed for Capability {}
unsafe impl Zeroed for PixFormat {}
unsafe impl Zeroed for Format {}
unsafe impl Zeroed for RequestBuffers {}
unsafe impl Zeroed for Buffer {}

const fn ioc(dir: c_ulong, nr: c_ulong, size: usize) -> c_ulong {
    (dir << 30) | ((size as c_ulong) << 16) | ((b'V' as c_ulong) << 8) | nr
}
const READ: c_ulong = 2;
const WRITE: c_ulong = 1;

/// One V4L2 ioctl request and the argument type it takes.
///
/// # Safety
/// `CODE` must be the kernel's request number for an argument of type `Arg`, and the kernel
/// must write nothing beyond `size_of::<Arg>()` bytes through it.
pub unsafe trait Request {
    type Arg;
    const CODE: c_ulong;
}

macro_rules! requests {
    ($($name:ident: $dir:expr, $nr:expr, $arg:ty;)*) => {$(
        pub struct $name;
        // SAFETY: the code encodes `size_of::<$arg>()` with the kernel's direction and number
        // for this request (`linux/videodev2.h`); the size field is what the kernel copies.
        unsafe impl Request for $name {
            type Arg = $arg;
            const CODE: c_ulong = ioc($dir, $nr, std::mem::size_of::<$arg>());
        }
    )*};
}

requests! {
    QueryCap: READ, 0, Capability;
    SetFormat: READ | WRITE, 5, Format;
    RequestBufs: READ | WRITE, 8, RequestBuffers;
    QueryBuf: READ | WRITE, 9, Buffer;
    QueueBuf: READ | WRITE, 15, Buffer;
    DequeueBuf: READ | WRITE, 17, Buffer;
    StreamOn: WRITE, 18, c_int;
    StreamOff: WRITE, 19, c_int;
}

/// Issues request `R` on `fd` with its argument, retrying when interrupted by a signal.
pub fn ioctl<R: Request>(fd: BorrowedFd<'_>, arg: &mut R::Arg) -> io::Result<()> {
    loop {
        // SAFETY: `arg` is a live, exclusively borrowed value of the one type request `R` takes
        // (the `Request` contract), and `fd` is an open descriptor for the borrow's duration.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), R::CODE as libc::Ioctl, arg as *mut R::Arg) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// A driver buffer mapped read-only into this process.
pub struct Mapping {
    ptr: *mut c_void,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (never aliased mutably from this process) and
// is only read through `&self`.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps the buffer `b` (as filled by QUERYBUF) of the device `fd`.
    pub fn new(fd: BorrowedFd<'_>, b: &Buffer) -> io::Result<Self> {
        let len = b.length as usize;
        // SAFETY: a fresh shared read-only mapping of `len` bytes at the driver's offset for
        // this buffer; no existing memory is affected, and the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                b.offset() as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    /// The first `used` bytes (at most the mapping's length). The driver does not write a
    /// buffer between DQBUF and the next QBUF, which is when the capture code reads it.
    pub fn bytes(&self, used: usize) -> &[u8] {
        // SAFETY: `ptr` is a live read-only mapping of `len` bytes (unmapped only on drop), and
        // the slice is cut to at most `len`.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, used.min(self.len)) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: this mapping was made by `mmap` with this length and is unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
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
            assert_eq!(QueryCap::CODE, 0x8068_5600);
            assert_eq!(SetFormat::CODE, 0xc0d0_5605);
            assert_eq!(DequeueBuf::CODE, 0xc058_5611);
        } else {
            assert_eq!(std::mem::size_of::<Format>(), 204);
        }
    }

    #[test]
    fn format_carries_the_pixel_format() {
        let pix = PixFormat {
            width: 64,
            pixelformat: PIX_GREY,
            ..PixFormat::zeroed()
        };
        let f = Format::capture(pix);
        assert_eq!(f.pix().width, 64);
        assert_eq!(f.pix().pixelformat, PIX_GREY);
    }
}
