//! rws-image: RGB images as rws processes them, height × width × 3, interleaved, f32 in [0, 1].
//!
//! One representation for camera frames, datasets and corruptions keeps conversions in one place:
//! here, on the device side, so the daemon needs nothing from the offline code. This crate owns
//! [`Image`] (PNG/JPEG in and out with the `image` crate; conversion back to 8 bits truncates like
//! `np.uint8(...)`, which is how CIFAR-10-C and `imagecorruptions` store results), [`resize`]
//! (OpenCV-compatible resizing) and [`tensor`] (images as normalized NCHW model input).

pub mod resize;
pub mod tensor;

use std::path::{Path, PathBuf};

/// An RGB image with f32 samples in [0, 1] (corruptions may produce values outside until clipped).
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub height: usize,
    pub width: usize,
    /// `height * width * 3` samples, row-major, RGB interleaved.
    pub data: Vec<f32>,
}

/// An image could not be read, written or built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("{len} samples do not make a {height}x{width}x{channels} image")]
    Shape {
        len: usize,
        height: usize,
        width: usize,
        channels: usize,
    },
    #[error("{channels} channels: expected 1 (gray) or 3 (RGB)")]
    Channels { channels: usize },
    /// A file whose decoded image would be larger than allowed (`max_pixels`).
    #[error("{}: {width}x{height} is more than the {max_pixels} pixels allowed", path.display())]
    TooLarge {
        path: PathBuf,
        width: u64,
        height: u64,
        max_pixels: u64,
    },
}

impl Image {
    /// A black image.
    pub fn new(height: usize, width: usize) -> Self {
        Image {
            height,
            width,
            data: vec![0.0; height * width * 3],
        }
    }

    /// From 8-bit samples with 1 (gray, replicated) or 3 (RGB) channels.
    pub fn from_u8(
        height: usize,
        width: usize,
        channels: usize,
        bytes: &[u8],
    ) -> Result<Self, ImageError> {
        let mut image = Image {
            height: 0,
            width: 0,
            data: Vec::new(),
        };
        image.fill_from_u8(height, width, channels, bytes)?;
        Ok(image)
    }

    /// [`Image::from_u8`] into this image's buffer (a frame source reuses one image per frame
    /// instead of allocating). On error the image is left empty.
    pub fn fill_from_u8(
        &mut self,
        height: usize,
        width: usize,
        channels: usize,
        bytes: &[u8],
    ) -> Result<(), ImageError> {
        self.data.clear();
        self.height = 0;
        self.width = 0;
        if channels != 1 && channels != 3 {
            return Err(ImageError::Channels { channels });
        }
        if height
            .checked_mul(width)
            .and_then(|n| n.checked_mul(channels))
            != Some(bytes.len())
        {
            return Err(ImageError::Shape {
                len: bytes.len(),
                height,
                width,
                channels,
            });
        }
        if channels == 3 {
            self.data
                .extend(bytes.iter().map(|&b| f32::from(b) / 255.0));
        } else {
            self.data
                .extend(bytes.iter().flat_map(|&b| [f32::from(b) / 255.0; 3]));
        }
        self.height = height;
        self.width = width;
        Ok(())
    }

    /// To 8-bit RGB: clip to [0, 1], scale by 255, truncate (as `np.uint8(np.clip(x,0,1)*255)`).
    /// A margin of 1e-4 of a level absorbs f32 representation error, so an 8-bit image
    /// converted in and back out is unchanged.
    pub fn to_u8(&self) -> Vec<u8> {
        self.data
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0 + 1e-4).min(255.0) as u8)
            .collect()
    }

    /// Reads a PNG or JPEG file (gray or RGB; alpha is dropped).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ImageError> {
        let path = path.as_ref();
        let img = image::open(path).map_err(|e| ImageError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self::from_dynamic(img))
    }

    /// Reads a PNG or JPEG file whose image has at most `max_pixels` pixels. The size is read
    /// from the header before anything is decoded, and the decoder's allocations are capped
    /// too, so a small file that claims a huge image costs nothing.
    pub fn open_limited(path: impl AsRef<Path>, max_pixels: u64) -> Result<Self, ImageError> {
        let path = path.as_ref();
        let reader = image::ImageReader::open(path).map_err(|e| file_err(path, &e))?;
        decode_reader(reader, path, max_pixels)
    }

    /// Decodes PNG or JPEG bytes.
    pub fn decode(bytes: &[u8], label: impl AsRef<Path>) -> Result<Self, ImageError> {
        let img = image::load_from_memory(bytes).map_err(|e| file_err(label.as_ref(), &e))?;
        Ok(Self::from_dynamic(img))
    }

    /// [`Self::decode`] under the limits of [`Self::open_limited`]: for bytes from outside.
    pub fn decode_limited(
        bytes: &[u8],
        label: impl AsRef<Path>,
        max_pixels: u64,
    ) -> Result<Self, ImageError> {
        let reader = image::ImageReader::new(std::io::Cursor::new(bytes));
        decode_reader(reader, label.as_ref(), max_pixels)
    }

    fn from_dynamic(img: image::DynamicImage) -> Self {
        let rgb = img.to_rgb8();
        let (w, h) = rgb.dimensions();
        let data = rgb.as_raw().iter().map(|&b| f32::from(b) / 255.0).collect();
        Image {
            height: h as usize,
            width: w as usize,
            data,
        }
    }

    /// Writes a PNG (or JPEG, by extension) of the 8-bit conversion.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ImageError> {
        let path = path.as_ref();
        let buf = image::RgbImage::from_raw(self.width as u32, self.height as u32, self.to_u8())
            .ok_or(ImageError::Shape {
                len: self.data.len(),
                height: self.height,
                width: self.width,
                channels: 3,
            })?;
        buf.save(path).map_err(|e| ImageError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Sample at (y, x, channel).
    #[inline]
    pub fn at(&self, y: usize, x: usize, c: usize) -> f32 {
        self.data[(y * self.width + x) * 3 + c]
    }

    /// Clips every sample to [0, 1].
    pub fn clip(mut self) -> Self {
        for v in &mut self.data {
            *v = v.clamp(0.0, 1.0);
        }
        self
    }

    /// One channel as a plane.
    pub fn channel(&self, c: usize) -> Vec<f32> {
        self.data.iter().skip(c).step_by(3).copied().collect()
    }

    /// Builds an image from three planes.
    pub fn from_planes(height: usize, width: usize, planes: [&[f32]; 3]) -> Self {
        let mut data = Vec::with_capacity(height * width * 3);
        for i in 0..height * width {
            data.extend(planes.iter().map(|p| p[i]));
        }
        Image {
            height,
            width,
            data,
        }
    }

    /// Applies `f` to each channel plane; `f` must return a plane of the same size.
    pub fn map_planes(&self, mut f: impl FnMut(&[f32]) -> Vec<f32>) -> Self {
        let planes: Vec<Vec<f32>> = (0..3).map(|c| f(&self.channel(c))).collect();
        Self::from_planes(
            self.height,
            self.width,
            [&planes[0], &planes[1], &planes[2]],
        )
    }
}

/// Peak signal-to-noise ratio in dB between two 8-bit images of the same size.
pub fn psnr_u8(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn file_err(path: &Path, e: &dyn std::fmt::Display) -> ImageError {
    ImageError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The one place a PNG/JPEG from outside is decoded: the decoder's allocations capped, the
/// size from its header checked against `max_pixels`, and only then the pixels.
fn decode_reader<R: std::io::BufRead + std::io::Seek>(
    reader: image::ImageReader<R>,
    path: &Path,
    max_pixels: u64,
) -> Result<Image, ImageError> {
    use image::ImageDecoder;
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| file_err(path, &e))?;
    let mut limits = image::Limits::default();
    // RGBA16 is the largest layout a PNG decodes to: 8 bytes a pixel, plus headroom.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(1 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| file_err(path, &e))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            width: w.into(),
            height: h.into(),
            max_pixels,
        });
    }
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| file_err(path, &e))?;
    Ok(Image::from_dynamic(img))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG whose header claims `w`×`h` pixels, with a token of image data: what a hostile
    /// frame directory could hold (a real 13000² PNG of one colour is 0.5 MB).
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            v.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            v.extend_from_slice(&body);
            v.extend_from_slice(&crc32fast_png(&body).to_be_bytes());
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        chunk(b"IEND", &[]);
        v
    }

    /// The CRC-32 PNG chunks carry (IEEE polynomial), bit by bit: a test needs no crate for it.
    fn crc32fast_png(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn an_image_larger_than_allowed_is_refused_from_its_header() {
        let dir = std::env::temp_dir().join(format!("rws-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("huge.png");
        std::fs::write(&path, png_header(13_000, 13_000)).unwrap();
        let start = std::time::Instant::now();
        let e = Image::open_limited(&path, 4096 * 4096).unwrap_err();
        assert!(
            matches!(e, ImageError::TooLarge { width: 13_000, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("huge.png"), "{e}");
        assert!(
            start.elapsed().as_millis() < 500,
            "refused without decoding"
        );
        let small = dir.join("small.png");
        Image::new(3, 4).save(&small).unwrap();
        assert_eq!(Image::open_limited(&small, 12).unwrap().width, 4);
        assert!(Image::open_limited(&small, 11).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
