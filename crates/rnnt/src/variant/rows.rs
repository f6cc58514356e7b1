//! Rows of a head read (or written) with a pitch: the last axis contiguous, the rows `pitch`
//! elements apart, so that NeMo's two TDT heads, views `joint[..., :V]` and `joint[..., V:]` of
//! one (B, T, U+1, V+D) tensor, are read and written in place.

use std::marker::PhantomData;

use ndarray::{ArrayView, ArrayViewMut};

use crate::batch::{ScoresDim, ScoresShape};
use crate::error::{Error, Result};

/// The layout of a head: rows of `width` elements, `pitch` apart, `count` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    count: usize,
    width: usize,
    pitch: usize,
}

impl Layout {
    /// Whether consecutive rows are contiguous.
    fn dense(&self) -> bool {
        self.pitch == self.width
    }

    /// The elements of rows `r..r + n` as one slice: n·width (n = 1, or the rows dense).
    ///
    /// # Panics
    /// If they are not rows, or n > 1 and the rows are not dense.
    #[inline]
    fn span(&self, r: usize, n: usize) -> usize {
        assert!(
            n >= 1 && r + n <= self.count,
            "rows {r}..{} of {}",
            r + n,
            self.count
        );
        assert!(n == 1 || self.dense(), "{n} rows of pitch {}", self.pitch);
        n * self.width
    }
}

/// The row layout of an array of shape `shape` and element strides `strides`, named `name`:
/// the last axis contiguous, the row pitch the stride of the innermost outer axis of extent > 1
/// (divided by the extents inside it), every outer axis consistent with it.
fn layout(shape: &[usize], strides: &[isize], name: &str) -> Result<Layout> {
    let (&width, outer) = shape.split_last().expect("scores have 2 or 4 axes");
    let count: usize = outer.iter().product();
    let bad = || {
        Error::Layout(format!(
            "{name} has shape {shape:?} and strides {strides:?}: the last axis must have stride 1 \
             and the others lay out rows of one pitch (C order over rows); make a copy"
        ))
    };
    if width > 1 && strides[shape.len() - 1] != 1 {
        return Err(bad());
    }
    if count == 0 || width == 0 {
        return Ok(Layout {
            count,
            width,
            pitch: width,
        });
    }
    let mut pitch = None;
    let mut inner = 1usize;
    for (&extent, &stride) in outer.iter().zip(strides).rev() {
        if extent > 1 {
            let stride = usize::try_from(stride).map_err(|_| bad())?;
            let row_pitch = match pitch {
                None if stride % inner == 0 => stride / inner,
                None => return Err(bad()),
                Some(p) => p,
            };
            if row_pitch.checked_mul(inner) != Some(stride) {
                return Err(bad());
            }
            pitch = Some(row_pitch);
        }
        inner = inner.checked_mul(extent).ok_or_else(bad)?;
    }
    let pitch = pitch.unwrap_or(width);
    if pitch < width {
        return Err(bad());
    }
    Ok(Layout {
        count,
        width,
        pitch,
    })
}

/// Read-only rows of a head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rows<'a, F> {
    ptr: *const F,
    layout: Layout,
    shape: ScoresShape,
    _borrow: PhantomData<&'a F>,
}

// SAFETY: `Rows` is a shared borrow of `F`s (as `&'a [F]`), which is Send and Sync when F is Sync.
unsafe impl<F: Sync> Send for Rows<'_, F> {}
// SAFETY: as above.
unsafe impl<F: Sync> Sync for Rows<'_, F> {}

impl<'a, F> Rows<'a, F> {
    /// The rows of `view` (named `name` in messages).
    ///
    /// # Errors
    /// [`Error::Layout`] unless the last axis is contiguous and the rows share one pitch.
    pub(crate) fn new<D: ScoresDim>(view: &ArrayView<'a, F, D>, name: &str) -> Result<Self> {
        let layout = layout(view.shape(), view.strides(), name)?;
        Ok(Rows {
            ptr: view.as_ptr(),
            layout,
            shape: D::scores_shape(&view.raw_dim()),
            _borrow: PhantomData,
        })
    }

    /// The sizes, as the loss names them.
    pub(crate) fn shape(&self) -> ScoresShape {
        self.shape
    }

    /// Whether the rows are contiguous (pitch = width), so that [`Rows::rows`] takes several.
    pub(crate) fn dense(&self) -> bool {
        self.layout.dense()
    }

    /// Row `r`.
    ///
    /// # Panics
    /// If `r` is not a row.
    #[inline]
    pub(crate) fn row(&self, r: usize) -> &'a [F] {
        self.rows(r, 1)
    }

    /// Rows `r..r + n`, one slice (n = 1, or the rows [`Rows::dense`]).
    ///
    /// # Panics
    /// If they are not rows, or n > 1 and the rows are not dense.
    #[inline]
    pub(crate) fn rows(&self, r: usize, n: usize) -> &'a [F] {
        let len = self.layout.span(r, n);
        // SAFETY: the view this was made from covers rows r..r + n: `layout` checked that their
        // elements are at r·pitch + k for k < width, which `span` found contiguous, and the
        // view's borrow lives for 'a.
        unsafe { std::slice::from_raw_parts(self.ptr.add(r * self.layout.pitch), len) }
    }
}

/// Writable rows of a head's gradient.
#[derive(Debug)]
pub(crate) struct RowsMut<'a, F> {
    ptr: *mut F,
    layout: Layout,
    shape: ScoresShape,
    _borrow: PhantomData<&'a mut F>,
}

// SAFETY: `RowsMut` is a unique borrow of `F`s (as `&'a mut [F]`), Send when F is Send; shared
// between threads, each row is written by one thread only (see `rows_mut`).
unsafe impl<F: Send> Send for RowsMut<'_, F> {}
// SAFETY: as above.
unsafe impl<F: Send> Sync for RowsMut<'_, F> {}

impl<'a, F> RowsMut<'a, F> {
    /// The rows of `view` (named `name` in messages).
    ///
    /// # Errors
    /// As [`Rows::new`].
    pub(crate) fn new<D: ScoresDim>(view: ArrayViewMut<'a, F, D>, name: &str) -> Result<Self> {
        let mut view = view;
        let layout = layout(view.shape(), view.strides(), name)?;
        Ok(RowsMut {
            ptr: view.as_mut_ptr(),
            layout,
            shape: D::scores_shape(&view.raw_dim()),
            _borrow: PhantomData,
        })
    }

    /// The sizes, as the loss names them.
    pub(crate) fn shape(&self) -> ScoresShape {
        self.shape
    }

    /// Whether the rows are contiguous (pitch = width), so that [`RowsMut::rows_mut`] takes
    /// several.
    pub(crate) fn dense(&self) -> bool {
        self.layout.dense()
    }

    /// Rows `r..r + n`, writable, one slice (n = 1, or the rows [`RowsMut::dense`]).
    ///
    /// # Safety
    /// No other reference to these rows may be alive while the returned one is (each row is
    /// written by one task).
    ///
    /// # Panics
    /// If they are not rows, or n > 1 and the rows are not dense.
    #[inline]
    #[allow(clippy::mut_from_ref)] // rows are handed out one task each under the contract above
    pub(crate) unsafe fn rows_mut(&self, r: usize, n: usize) -> &mut [F] {
        let len = self.layout.span(r, n);
        // SAFETY: the view this was made from covers rows r..r + n (contiguous, `span`) and is
        // borrowed uniquely for 'a; the caller guarantees that no other reference to them is
        // alive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r * self.layout.pitch), len) }
    }
}
