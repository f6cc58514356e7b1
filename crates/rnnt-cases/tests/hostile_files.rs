//! The case reader on files someone else wrote: each kind of bad `.npz` is a format error naming
//! the array (never a panic, an abort, or an allocation of what a header claims), and the
//! unusual but valid layouts NumPy writes (Fortran order, big-endian) read as they should.

use std::io::{Cursor, Write};
use std::path::Path;

use ndarray::Array4;
use rnnt_cases::{read_case, read_case_from, CaseError, Scores};
use zip::write::SimpleFileOptions;
use zip::ZipWriter;

/// An `.npy` file: version 1 header with `descr`, `fortran_order` and `shape`, then `data`.
fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let fortran = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend(u16::try_from(header.len()).unwrap().to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

fn le_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn le_i32(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An archive of `members` (name, `.npy` bytes), stored uncompressed.
fn npz(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in members {
        zip.start_file(format!("{name}.npy"), SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// The members of a valid B=1, T=2, U=1, V=2 case whose logits are `logits`.
fn case_with_logits(logits: Vec<u8>) -> Vec<u8> {
    npz(&[
        ("logits", logits),
        ("targets", npy("<i4", false, "(1, 1)", &le_i32(&[0]))),
        ("logit_lengths", npy("<i4", false, "(1,)", &le_i32(&[2]))),
        ("target_lengths", npy("<i4", false, "(1,)", &le_i32(&[1]))),
    ])
}

/// Reads `bytes` and returns the format error's message.
fn format_error(bytes: Vec<u8>) -> String {
    match read_case_from(Cursor::new(bytes), Path::new("hostile.npz")) {
        Err(CaseError::Format { path, message }) => {
            assert_eq!(path, Path::new("hostile.npz"));
            message
        }
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn a_header_declaring_more_data_than_the_file_holds_is_an_error() {
    // (10⁹, 10⁹, 1, 1) float32 is 4·10¹⁸ bytes: reading used to allocate them, and abort.
    let logits = npy("<f4", false, "(1000000000, 1000000000, 1, 1)", &[0; 64]);
    let message = format_error(case_with_logits(logits));
    assert!(
        message.contains("`logits` declares shape [1000000000, 1000000000, 1, 1] of float32")
            && message.contains("but holds 64 bytes of data"),
        "{message}"
    );
}

#[test]
fn a_shape_whose_byte_count_overflows_is_an_error() {
    let logits = npy("<f4", false, "(4294967297, 4294967297, 1, 1)", &[0; 16]);
    let message = format_error(case_with_logits(logits));
    assert!(
        message.contains("more bytes than memory can hold"),
        "{message}"
    );
}

#[test]
fn a_header_length_beyond_the_file_is_an_error() {
    let mut logits = npy("<f4", false, "(1, 2, 2, 2)", &le_f32(&[0.0; 8]));
    // Version 2: a 4-byte HEADER_LEN, here 4 GiB.
    logits[6] = 2;
    logits.splice(8..10, [0xff, 0xff, 0xff, 0xff]);
    let message = format_error(case_with_logits(logits));
    assert!(message.contains("declares 4294967295 bytes"), "{message}");
}

#[test]
fn truncated_and_foreign_files_are_errors() {
    let valid = case_with_logits(npy("<f4", false, "(1, 2, 2, 2)", &le_f32(&[0.0; 8])));
    assert!(read_case_from(Cursor::new(valid.clone()), Path::new("ok.npz")).is_ok());
    for cut in [0, 4, valid.len() / 2, valid.len() - 1] {
        let message = format_error(valid[..cut].to_vec());
        assert!(message.contains("not a readable .npz file"), "{message}");
    }
    let message = format_error(case_with_logits(b"\x93NUMPX\x01\x00".to_vec()));
    assert!(
        message.contains("`logits` is not a valid .npy array"),
        "{message}"
    );
    let message = format_error(case_with_logits(b"\x93NUMPY\x01".to_vec()));
    assert!(message.contains("ends inside its header"), "{message}");
    let truncated = npy("<f4", false, "(1, 2, 2, 2)", &le_f32(&[0.0; 8]));
    let message = format_error(case_with_logits(truncated[..truncated.len() - 3].to_vec()));
    assert!(message.contains("but holds 29 bytes of data"), "{message}");
}

#[test]
fn object_and_other_unsupported_dtypes_are_errors() {
    // An object array holds a pickle, which is never unpickled.
    let pickled = npy("|O", false, "(1, 2, 2, 2)", b"\x80\x04\x95 pickle");
    let message = format_error(case_with_logits(pickled));
    assert!(
        message.contains("`logits` must be a 4-D float32 or float64 array, not of dtype '|O'"),
        "{message}"
    );
    let half = npy("<f2", false, "(1, 2, 2, 2)", &[0; 16]);
    assert!(format_error(case_with_logits(half)).contains("dtype '<f2'"));
    let mut members = vec![(
        "logits",
        npy("<f4", false, "(1, 2, 2, 2)", &le_f32(&[0.0; 8])),
    )];
    members.push(("targets", npy("<f4", false, "(1, 1)", &le_f32(&[0.0]))));
    let message = format_error(npz(&members));
    assert!(
        message.contains("`targets` must be an int32 or int64 array"),
        "{message}"
    );
}

#[test]
fn deeply_nested_headers_are_errors() {
    let shape = format!("{}1,{}", "(".repeat(30000), ")".repeat(30000));
    let message = format_error(case_with_logits(npy("<f4", false, &shape, &[])));
    assert!(message.contains("error parsing header"), "{message}");
}

#[test]
fn fortran_order_and_big_endian_arrays_read_in_c_order() {
    let want = Array4::from_shape_fn((1, 2, 2, 2), |(_, t, u, k)| (4 * t + 2 * u + k) as f32);
    // Fortran order stores the first index fastest.
    let fortran: Vec<f32> = want.t().iter().copied().collect();
    let big_endian: Vec<u8> = want.iter().flat_map(|v| v.to_be_bytes()).collect();
    for logits in [
        npy("<f4", true, "(1, 2, 2, 2)", &le_f32(&fortran)),
        npy(">f4", false, "(1, 2, 2, 2)", &big_endian),
    ] {
        let case =
            read_case_from(Cursor::new(case_with_logits(logits)), Path::new("x.npz")).unwrap();
        match case.logits {
            Some(Scores::F32(logits)) => {
                assert!(logits.is_standard_layout());
                assert_eq!(logits, want);
            }
            other => panic!("expected float32 logits, got {other:?}"),
        }
    }
}

#[test]
fn golden_cases_read_as_before() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden");
    let case = read_case(&dir.join("seed_random_batch.npz")).unwrap();
    assert_eq!(case.logit_lengths.to_vec(), [4, 2]);
    assert_eq!(case.blank, Some(5));
    assert!(case.truth.is_some());
}
