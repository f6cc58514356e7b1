//! Reading fuzz bytes as choices. Each choice takes one byte (zero once the bytes run out), and
//! most byte values map to a valid choice, so that the fuzzer reaches the computation and the
//! rarer values reach each kind of invalid input.

/// Fuzz bytes being read front to back.
pub(crate) struct Bytes<'a> {
    rest: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// Reads `data`.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Bytes { rest: data }
    }

    /// The next byte, 0 once the data is exhausted.
    pub(crate) fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&first, rest)) => {
                self.rest = rest;
                first
            }
            None => 0,
        }
    }

    /// A choice in 0..n (n ≥ 1).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    /// A coin flip.
    pub(crate) fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// One of `choices`.
    pub(crate) fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len())]
    }

    /// A size in 1..=max, and now and then 0.
    pub(crate) fn size(&mut self, max: usize) -> usize {
        match self.byte() {
            255 => 0,
            byte => 1 + usize::from(byte) % max,
        }
    }

    /// The next `n` bytes (fewer if the data ends first).
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        head
    }
}
