//! Dialled-number normalization: whatever a carrier puts in a Request-URI becomes one canonical
//! national number, following China's numbering plan. Pure: no I/O, no clock, no allocation
//! beyond the result.

use thiserror::Error;

/// A validated area code with its trunk prefix: `010`, `021`, `0591`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AreaCode(String);

impl AreaCode {
    /// Validates an area code written with its trunk prefix 0.
    ///
    /// # Errors
    /// [`NumberError::BadArea`] unless it is `010`, `02x` or `0` + three digits not starting 0/1/2.
    pub fn new(s: &str) -> Result<AreaCode, NumberError> {
        todo!("{s}")
    }

    /// The code as written, e.g. `0591`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the caller's side tells us about how a number was dialled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dialling {
    /// Area assumed for numbers dialled without one (the trunk's origin area).
    pub origin_area: Option<AreaCode>,
}

/// A canonical national number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dialled {
    national: String,
    area_len: usize,
}

impl Dialled {
    /// The canonical digits: `059185666661`, `059112356`, `13800000000`, `12356`.
    pub fn as_str(&self) -> &str {
        &self.national
    }
    /// The area code with trunk prefix, when the number is geographic or area-scoped.
    pub fn area(&self) -> Option<&str> {
        todo!()
    }
    /// The part after the area code (the whole number when there is no area).
    pub fn local(&self) -> &str {
        todo!()
    }
}

/// Why a string is not a dialable number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NumberError {
    /// Nothing to normalize.
    #[error("empty number")]
    Empty,
}

/// Turns a Request-URI (`sip:`, `sips:`, `tel:`) or a bare number into its canonical form.
///
/// # Errors
/// A [`NumberError`] naming what is wrong; never panics.
pub fn normalize(input: &str, dialling: &Dialling) -> Result<Dialled, NumberError> {
    todo!("{input} {dialling:?}")
}
