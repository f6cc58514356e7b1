//! The `.npz` reader's check: an archive made from fuzz bytes, read as `rnnt loss` reads it.

use std::io::{Cursor, Write};
use std::path::Path;

use ndarray::Array4;
use rnnt::{Float, LossInput, Options, Targets};
use rnnt_cases::{read_case_from, Case, Labels, Scores};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::bytes::Bytes;
use crate::compare::loss_against_reference;

/// The arrays a case file may hold.
const NAMES: [&str; 9] = [
    "logits",
    "log_probs",
    "targets",
    "logit_lengths",
    "target_lengths",
    "blank",
    "losses",
    "grad_logits",
    "grad_log_probs",
];

/// Dtype descriptors: those the reader takes, in both byte orders, and those it must refuse
/// (object arrays, which NumPy pickles; half floats; booleans; a structured dtype; garbage).
const DESCRIPTORS: [&str; 14] = [
    "'<f4'",
    "'<f8'",
    "'<i4'",
    "'<i8'",
    "'>f4'",
    "'>f8'",
    "'>i4'",
    "'>i8'",
    "'|O'",
    "'<f2'",
    "'|b1'",
    "'<u8'",
    "[('a', '<f4')]",
    "'<f4' 'x'",
];

/// Dimensions of a shape: small, and the huge ones whose element count or byte count
/// overflows, or exceeds what any file holds.
const DIMENSIONS: [&str; 16] = [
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "1",
    "2",
    "1000000000",
    "2147483648",
    "4294967297",
    "4611686018427387904",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
];

/// Builds an `.npz` archive from `data` and reads it with [`rnnt_cases::read_case_from`], which
/// must return (an error is fine; a panic, an abort or a huge allocation is a finding). A case
/// that reads goes through the loss as `rnnt loss` runs it, with the checks of
/// [`check_loss`](crate::check_loss) against the reference.
///
/// `data` starting with `PK` is the archive as it is (so real `.npz` files seed the corpus).
/// Otherwise its first byte chooses how the archive is assembled: from `.npy` members whose
/// bytes are taken as they are, or from members whose headers are written from the fuzz bytes
/// (dtype, byte order, Fortran order, shape, format version, a `HEADER_LEN` that may lie, the
/// amount of data).
pub fn check_npz(data: &[u8]) {
    let archive = if data.starts_with(b"PK") {
        data.to_vec()
    } else {
        let mut bytes = Bytes::new(data);
        if bytes.flag() {
            assemble(&mut bytes, raw_member)
        } else {
            assemble(&mut bytes, written_member)
        }
    };
    if let Ok(case) = read_case_from(Cursor::new(archive), Path::new("fuzz.npz")) {
        run_case(&case);
    }
}

/// A zip archive of up to six members, each a name and the bytes `member` makes.
fn assemble(bytes: &mut Bytes<'_>, member: fn(&mut Bytes<'_>) -> Vec<u8>) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let count = 1 + bytes.below(6);
    for _ in 0..count {
        let name = bytes.pick(&NAMES);
        let method = if bytes.byte() == 255 {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default().compression_method(method);
        let contents = member(bytes);
        // A name given twice is refused by the writer: the archive keeps the first.
        if zip.start_file(format!("{name}.npy"), options).is_ok() {
            zip.write_all(&contents).expect("writing to memory");
        }
    }
    zip.finish().expect("writing to memory").into_inner()
}

/// A member's bytes as they are: a length byte, then that many bytes.
fn raw_member(bytes: &mut Bytes<'_>) -> Vec<u8> {
    let len = usize::from(bytes.byte()) * 4;
    bytes.take(len).to_vec()
}

/// A `.npy` member with a header written from the fuzz bytes, then data bytes: as many as the
/// header declares when that is small, or a fuzzed count.
fn written_member(bytes: &mut Bytes<'_>) -> Vec<u8> {
    let descr = bytes.pick(&DESCRIPTORS);
    let fortran = if bytes.flag() { "True" } else { "False" };
    let rank = bytes.below(5);
    let dims: Vec<&str> = (0..rank).map(|_| bytes.pick(&DIMENSIONS)).collect();
    let shape = match dims.as_slice() {
        [one] => format!("({one},)"),
        dims => format!("({})", dims.join(", ")),
    };
    let mut header =
        format!("{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}");
    let version = bytes.pick(&[1u8, 1, 1, 2, 3]);
    let prefix = if version == 1 { 10 } else { 12 };
    while !(prefix + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let declared_len = match bytes.byte() {
        253 => header.len() + 1,
        254 => header.len().saturating_sub(1),
        255 => usize::MAX,
        _ => header.len(),
    };
    let mut npy = b"\x93NUMPY".to_vec();
    npy.extend([version, 0]);
    if version == 1 {
        npy.extend(
            u16::try_from(declared_len)
                .unwrap_or(u16::MAX)
                .to_le_bytes(),
        );
    } else {
        npy.extend(
            u32::try_from(declared_len)
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
    }
    npy.extend(header.as_bytes());
    let declared_bytes = dims
        .iter()
        .try_fold(element_size(descr), |n, d| {
            n.checked_mul(d.parse::<usize>().ok()?)
        })
        .filter(|&n| n <= 512);
    let data_len = match (bytes.byte(), declared_bytes) {
        (0..=191, Some(n)) => n,
        (byte, _) => usize::from(byte) * 2,
    };
    let fill = bytes.take(data_len);
    npy.extend((0..data_len).map(|i| fill.get(i).copied().unwrap_or(0)));
    npy
}

/// The bytes per element of a descriptor (8 for the ones the reader refuses).
fn element_size(descr: &str) -> usize {
    match descr {
        "'<f4'" | "'>f4'" | "'<i4'" | "'>i4'" => 4,
        "'<f2'" => 2,
        "'|b1'" => 1,
        _ => 8,
    }
}

/// Runs what `rnnt loss` runs on a case read from a file, both input modes, against the
/// reference.
fn run_case(case: &Case) {
    let options = Options {
        blank: case.blank.unwrap_or(-1),
        ..Options::default()
    };
    for (scores, fused_log_softmax) in [(&case.logits, true), (&case.log_probs, false)] {
        let options = Options {
            fused_log_softmax,
            ..options
        };
        match scores {
            Some(Scores::F32(scores)) => run_typed(case, scores, &options),
            Some(Scores::F64(scores)) => run_typed(case, scores, &options),
            None => {}
        }
    }
}

/// [`run_case`] for scores of one dtype, skipped where they are too large to check quickly.
fn run_typed<F: Float>(case: &Case, scores: &Array4<F>, options: &Options) {
    if scores.len() > 1 << 14 {
        return;
    }
    let input = LossInput {
        logits: scores.view(),
        targets: match &case.targets {
            Labels::Padded(padded) => Targets::Padded(padded.view()),
            Labels::Packed(packed) => Targets::Packed(packed.view()),
        },
        logit_lengths: case.logit_lengths.view(),
        target_lengths: case.target_lengths.view(),
    };
    loss_against_reference(&input, options, crate::input::Fault::None);
}
