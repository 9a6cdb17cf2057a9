//! Targets for frames from outside: raw `rgb24`/`gray8` streams and PNG/JPEG files, through the
//! decoding and the conversion to model input that the daemon's frame loop runs.

use std::io::Cursor;
use std::path::Path;

use rws_image::tensor::{Normalize, ToInput};
use rws_image::Image;
use rwsd::config::RawFormat;
use rwsd::frames::{Frames, RawFrames};
use rwsd::source::Stop;

/// The frame size PNG/JPEG input may claim here: small, so that a run spends its time on the
/// decoders' parsing, not on large pixel loops.
const MAX_PIXELS: u64 = 1 << 16;

/// A raw stream: the first three bytes choose width, height and format, the rest is the
/// stream. Every frame is whole and in [0, 1]; a short last frame is not a frame.
pub fn frame_raw(data: &[u8]) {
    let [w, h, f, rest @ ..] = data else {
        return;
    };
    let (width, height) = (1 + usize::from(w % 16), 1 + usize::from(h % 16));
    let format = if f & 1 == 0 {
        RawFormat::Rgb24
    } else {
        RawFormat::Gray8
    };
    let mut frames = RawFrames::from_reader(
        Box::new(Cursor::new(rest.to_vec())),
        Path::new("fuzz.raw"),
        width,
        height,
        format,
        &Stop::new(),
    );
    let mut prep = ToInput::default();
    let mut spare = None;
    let mut n = 0;
    while let Ok(Some(frame)) = frames.next_frame(spare.take()) {
        check_image(&frame.image, width, height);
        // The conversion is the same code for every frame: the first one shows it.
        if n == 0 {
            let size = (1 + usize::from(f >> 4), 1 + usize::from(f & 15));
            convert(&mut prep, &frame.image, size);
        }
        spare = Some(frame.image);
        n += 1;
    }
    assert!(n <= rest.len() / (width * height * format.channels()));
}

/// PNG or JPEG bytes under the daemon's pixel limit: an image it accepts is within the limit,
/// whole, in [0, 1], and converts to a finite model input.
pub fn frame_image(data: &[u8]) {
    let Ok(image) = Image::decode_limited(data, "fuzz.img", MAX_PIXELS) else {
        return;
    };
    assert!((image.width * image.height) as u64 <= MAX_PIXELS);
    check_image(&image, image.width, image.height);
    convert(&mut ToInput::default(), &image, (7, 9));
}

fn check_image(image: &Image, width: usize, height: usize) {
    assert_eq!((image.width, image.height), (width, height));
    assert_eq!(image.data.len(), width * height * 3);
    assert!(image.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

fn convert(prep: &mut ToInput, image: &Image, size: (usize, usize)) {
    let mut out = Vec::new();
    if prep
        .run(image, size, &Normalize::IDENTITY, &mut out)
        .is_ok()
    {
        assert_eq!(out.len(), 3 * size.0 * size.1);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
