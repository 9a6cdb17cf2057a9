//! The 19 image corruptions of Hendrycks & Dietterich (ImageNet-C / CIFAR-10-C), severities 1–5.
//!
//! Two constant sets: [`Preset::Cifar`] (make_cifar_c.py, for small images such as the 32×32
//! training data) and [`Preset::ImageNet`] (imagecorruptions 1.1.2, for camera-sized images).
//! [`Preset::Auto`] picks CIFAR for images whose sides are both ≤ 64 pixels.
//!
//! Randomness comes from [`rws_rng::Rng`] seeded by the caller, so the same seed gives the same
//! output on every machine. The deterministic corruptions (gaussian/defocus/zoom blur, contrast,
//! brightness, saturate, pixelate, jpeg) reproduce the reference to ≥ 30 dB PSNR; the random ones
//! reproduce its statistics (tests/corruptions.rs checks both against committed reference outputs).
//!
//! CIFAR-10-C made motion blur (and the streaks of snow) with ImageMagick; like imagecorruptions,
//! rws uses a shifted-copy Gaussian streak instead, with the CIFAR constants.

mod filters;
mod kinds;

use std::fmt;
use std::str::FromStr;

use rws_image::Image;
use rws_rng::Rng;

pub use filters::Border;

/// One of the 19 corruptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Corruption {
    GaussianNoise,
    ShotNoise,
    ImpulseNoise,
    SpeckleNoise,
    DefocusBlur,
    GlassBlur,
    MotionBlur,
    ZoomBlur,
    GaussianBlur,
    Snow,
    Frost,
    Fog,
    Brightness,
    Contrast,
    ElasticTransform,
    Pixelate,
    JpegCompression,
    Saturate,
    Spatter,
}

/// The four families the paper groups signatures into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Noise,
    Blur,
    Weather,
    Digital,
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Group::Noise => "noise",
            Group::Blur => "blur",
            Group::Weather => "weather",
            Group::Digital => "digital",
        })
    }
}

impl Corruption {
    /// All 19, in a fixed order (noise, blur, weather, digital).
    pub const ALL: [Corruption; 19] = [
        Corruption::GaussianNoise,
        Corruption::ShotNoise,
        Corruption::ImpulseNoise,
        Corruption::SpeckleNoise,
        Corruption::DefocusBlur,
        Corruption::GlassBlur,
        Corruption::MotionBlur,
        Corruption::ZoomBlur,
        Corruption::GaussianBlur,
        Corruption::Snow,
        Corruption::Frost,
        Corruption::Fog,
        Corruption::Brightness,
        Corruption::Spatter,
        Corruption::Contrast,
        Corruption::ElasticTransform,
        Corruption::Pixelate,
        Corruption::JpegCompression,
        Corruption::Saturate,
    ];

    /// The snake_case name used by imagecorruptions, file names and manifests.
    pub fn name(self) -> &'static str {
        match self {
            Corruption::GaussianNoise => "gaussian_noise",
            Corruption::ShotNoise => "shot_noise",
            Corruption::ImpulseNoise => "impulse_noise",
            Corruption::SpeckleNoise => "speckle_noise",
            Corruption::DefocusBlur => "defocus_blur",
            Corruption::GlassBlur => "glass_blur",
            Corruption::MotionBlur => "motion_blur",
            Corruption::ZoomBlur => "zoom_blur",
            Corruption::GaussianBlur => "gaussian_blur",
            Corruption::Snow => "snow",
            Corruption::Frost => "frost",
            Corruption::Fog => "fog",
            Corruption::Brightness => "brightness",
            Corruption::Contrast => "contrast",
            Corruption::ElasticTransform => "elastic_transform",
            Corruption::Pixelate => "pixelate",
            Corruption::JpegCompression => "jpeg_compression",
            Corruption::Saturate => "saturate",
            Corruption::Spatter => "spatter",
        }
    }

    /// The paper's grouping (Fig. 4).
    pub fn group(self) -> Group {
        use Corruption::*;
        match self {
            GaussianNoise | ShotNoise | ImpulseNoise | SpeckleNoise => Group::Noise,
            DefocusBlur | GlassBlur | MotionBlur | ZoomBlur | GaussianBlur => Group::Blur,
            Snow | Frost | Fog | Brightness | Spatter => Group::Weather,
            Contrast | ElasticTransform | Pixelate | JpegCompression | Saturate => Group::Digital,
        }
    }

    /// True when the output depends on the seed.
    pub fn is_random(self) -> bool {
        use Corruption::*;
        matches!(
            self,
            GaussianNoise
                | ShotNoise
                | ImpulseNoise
                | SpeckleNoise
                | GlassBlur
                | MotionBlur
                | Snow
                | Frost
                | Fog
                | ElasticTransform
                | Spatter
        )
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Corruption {
    type Err = CorruptError;
    fn from_str(s: &str) -> Result<Self, CorruptError> {
        Corruption::ALL
            .iter()
            .copied()
            .find(|c| c.name() == s)
            .ok_or_else(|| CorruptError::UnknownName(s.to_string()))
    }
}

/// Which constant set to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// CIFAR-10-C (Hendrycks & Dietterich's make_cifar_c.py).
    Cifar,
    /// ImageNet-C as packaged by imagecorruptions 1.1.2.
    ImageNet,
    /// CIFAR when both sides are ≤ 64 pixels, else ImageNet.
    Auto,
}

impl Preset {
    /// The name `--preset` takes.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Cifar => "cifar",
            Preset::ImageNet => "imagenet",
            Preset::Auto => "auto",
        }
    }
}

impl FromStr for Preset {
    type Err = CorruptError;
    fn from_str(s: &str) -> Result<Self, CorruptError> {
        match s {
            "cifar" => Ok(Preset::Cifar),
            "imagenet" => Ok(Preset::ImageNet),
            "auto" => Ok(Preset::Auto),
            _ => Err(CorruptError::UnknownPreset(s.to_string())),
        }
    }
}

/// Why an image could not be corrupted.
#[derive(Debug, thiserror::Error)]
pub enum CorruptError {
    #[error("unknown corruption '{0}'; expected one of: {names}", names = Corruption::ALL.map(|c| c.name()).join(", "))]
    UnknownName(String),
    #[error("unknown preset '{0}'; expected cifar, imagenet or auto")]
    UnknownPreset(String),
    #[error("severity {0} is out of range; expected 1 to 5")]
    Severity(u8),
    #[error("image is {height}x{width}; {corruption} needs at least {min}x{min} pixels")]
    TooSmall {
        corruption: Corruption,
        height: usize,
        width: usize,
        min: usize,
    },
    #[error("image data has {len} samples, not {height}x{width}x3")]
    Shape {
        len: usize,
        height: usize,
        width: usize,
    },
    #[error("frost: {0}")]
    Frost(String),
    #[error("jpeg_compression: {0}")]
    Jpeg(String),
}

/// Smallest side accepted, as imagecorruptions requires.
pub const MIN_SIDE: usize = 32;

/// Applies `corruption` at `severity` (1–5) to `image`, drawing randomness from `seed`.
pub fn corrupt(
    image: &Image,
    corruption: Corruption,
    severity: u8,
    preset: Preset,
    seed: u64,
) -> Result<Image, CorruptError> {
    if !(1..=5).contains(&severity) {
        return Err(CorruptError::Severity(severity));
    }
    if image.data.len() != image.height * image.width * 3 {
        return Err(CorruptError::Shape {
            len: image.data.len(),
            height: image.height,
            width: image.width,
        });
    }
    if image.height < MIN_SIDE || image.width < MIN_SIDE {
        return Err(CorruptError::TooSmall {
            corruption,
            height: image.height,
            width: image.width,
            min: MIN_SIDE,
        });
    }
    let cifar = match preset {
        Preset::Cifar => true,
        Preset::ImageNet => false,
        Preset::Auto => image.height <= 64 && image.width <= 64,
    };
    let mut rng = Rng::new(seed ^ ((corruption as u64) << 32) ^ (u64::from(severity) << 48));
    let s = usize::from(severity - 1);
    let out = kinds::apply(image, corruption, s, cifar, &mut rng)?;
    Ok(out.clip())
}
