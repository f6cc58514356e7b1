//! The `.npy` arrays of an `.npz` archive, read without trusting what their headers claim.
//!
//! `ndarray-npy` allocates what a header declares before reading what follows it: `HEADER_LEN`
//! bytes for the header, then the element count of `shape` for the data. A file of a few bytes
//! can declare terabytes, and the process then aborts in the allocator instead of reporting a
//! bad file. So each member is read whole first (its true size, whatever the zip directory
//! claims), its framing and header are checked against that size, and only then is it handed to
//! `ndarray-npy`, whose allocations are then bounded by the bytes present. This costs a copy of
//! each array while it is read. Fortran-ordered arrays come back in C order.

use std::io::{Read, Seek};

use ndarray::{Array, Dimension};
use ndarray_npy::npy::header::Header;
use ndarray_npy::{ReadNpyExt, ReadableElement};
use zip::ZipArchive;

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8] = b"\x93NUMPY";

/// An `.npz` archive being read.
pub(crate) struct Archive<R> {
    zip: ZipArchive<R>,
}

impl<R: Read + Seek> Archive<R> {
    /// Opens the archive; the error says why it is not a zip file.
    pub(crate) fn new(reader: R) -> Result<Self, String> {
        ZipArchive::new(reader)
            .map(|zip| Archive { zip })
            .map_err(|e| format!("not a readable .npz file: {e}"))
    }

    /// The names of its arrays (a trailing `.npy` stripped, as NumPy does).
    pub(crate) fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .map(|name| name.strip_suffix(".npy").unwrap_or(name).to_owned())
            .collect()
    }

    /// The array `name` (stored as `name` or `name.npy`), or `None` when the archive has none.
    pub(crate) fn member(&mut self, name: &str) -> Result<Option<Member>, String> {
        let Some(index) = self
            .zip
            .index_for_name(name)
            .or_else(|| self.zip.index_for_name(&format!("{name}.npy")))
        else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        self.zip
            .by_index(index)
            .and_then(|mut file| Ok(file.read_to_end(&mut bytes)?))
            .map_err(|e| format!("`{name}` cannot be read: {e}"))?;
        Member::parse(name, bytes).map(Some)
    }

    /// The array `name`, which the archive must hold.
    pub(crate) fn required(&mut self, name: &str) -> Result<Member, String> {
        self.member(name)?
            .ok_or_else(|| format!("missing array `{name}`"))
    }
}

/// One array of an archive: its whole `.npy` bytes, checked to hold a well-formed header.
pub(crate) struct Member {
    name: String,
    bytes: Vec<u8>,
    header: Header,
    data_len: usize,
}

impl Member {
    /// Checks the framing (magic string, version, `HEADER_LEN` within the bytes present) and
    /// parses the header.
    fn parse(name: &str, bytes: Vec<u8>) -> Result<Member, String> {
        let invalid = |why: String| format!("`{name}` is not a valid .npy array: {why}");
        if !bytes.starts_with(MAGIC) {
            return Err(invalid(
                "it does not start with the .npy magic string".into(),
            ));
        }
        // HEADER_LEN is 2 bytes little-endian in version 1, 4 bytes in versions 2 and 3.
        let (major, len_field) = match bytes.get(MAGIC.len()) {
            Some(1) => (1, 2),
            Some(major @ (2 | 3)) => (*major, 4),
            Some(major) => return Err(invalid(format!("unknown format version {major}"))),
            None => return Err(invalid("it ends inside its header".into())),
        };
        let header_start = MAGIC.len() + 2 + len_field;
        let Some(field) = bytes.get(MAGIC.len() + 2..header_start) else {
            return Err(invalid("it ends inside its header".into()));
        };
        let header_len = field
            .iter()
            .rev()
            .fold(0usize, |len, &byte| (len << 8) | usize::from(byte));
        let available = bytes.len() - header_start;
        if header_len > available {
            return Err(invalid(format!(
                "its version {major} header declares {header_len} bytes but {available} follow"
            )));
        }
        let header =
            Header::from_reader(&mut bytes.as_slice()).map_err(|e| invalid(e.to_string()))?;
        Ok(Member {
            name: name.to_owned(),
            data_len: available - header_len,
            bytes,
            header,
        })
    }

    /// The array's name in the archive.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The dtype descriptor as NumPy writes it for plain types (`"<f4"`), `None` for structured
    /// dtypes.
    pub(crate) fn descr(&self) -> Option<&str> {
        self.header.type_descriptor.as_string().map(String::as_str)
    }

    /// The dtype as the header states it, for messages.
    pub(crate) fn dtype_text(&self) -> String {
        self.header.type_descriptor.to_string()
    }

    /// The rank of the array.
    pub(crate) fn ndim(&self) -> usize {
        self.header.shape.len()
    }

    /// The array as elements `T` of rank `D`, in C order. The declared shape must account for
    /// every byte of data present, no more and no fewer; `dtype` names `T` in messages.
    pub(crate) fn array<T: ReadableElement + Clone, D: Dimension>(
        &self,
        dtype: &str,
    ) -> Result<Array<T, D>, String> {
        let (name, shape) = (&self.name, &self.header.shape);
        if let Some(rank) = D::NDIM.filter(|&rank| rank != shape.len()) {
            return Err(format!(
                "`{name}` has shape {shape:?}: expected {rank} dimensions"
            ));
        }
        // ndarray also wants the product of the nonzero dimensions to fit in isize, even for
        // an empty array (a shape (0, 2⁶³) made `read_npy` panic: found by fuzzing).
        let nonzero = shape
            .iter()
            .filter(|&&dim| dim != 0)
            .try_fold(std::mem::size_of::<T>(), |count, &dim| {
                count.checked_mul(dim)
            })
            .filter(|&bytes| isize::try_from(bytes).is_ok());
        let bytes = shape
            .iter()
            .try_fold(1usize, |count, &dim| count.checked_mul(dim))
            .and_then(|count| count.checked_mul(std::mem::size_of::<T>()))
            .filter(|_| nonzero.is_some());
        match bytes {
            Some(bytes) if bytes == self.data_len => {}
            Some(bytes) => {
                return Err(format!(
                    "`{name}` declares shape {shape:?} of {dtype}, {bytes} bytes, but holds {} \
                     bytes of data",
                    self.data_len
                ))
            }
            None => {
                return Err(format!(
                    "`{name}` declares shape {shape:?} of {dtype}: more bytes than memory can hold"
                ))
            }
        }
        let array = Array::<T, D>::read_npy(self.bytes.as_slice())
            .map_err(|e| format!("`{name}` cannot be read as {dtype}: {e}"))?;
        Ok(if array.is_standard_layout() {
            array
        } else {
            array.as_standard_layout().into_owned()
        })
    }
}
