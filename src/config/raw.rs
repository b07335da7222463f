//! The mapping file's serde shape, with spans so validation can name the line. No checks here
//! beyond TOML syntax and types.

use serde::Deserialize;
use toml::value::Datetime;
use toml::Spanned;

/// A whole mapping file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub gateway: Option<Spanned<RawGateway>>,
    pub new_number: Spanned<RawNewNumber>,
    #[serde(default)]
    pub queue: Vec<Spanned<RawQueue>>,
    #[serde(default)]
    pub area: Vec<Spanned<RawArea>>,
    #[serde(default)]
    pub trunk: Vec<Spanned<RawTrunk>>,
    #[serde(default)]
    pub legacy: Vec<Spanned<RawLegacy>>,
    pub retirement: Option<Spanned<RawRetirement>>,
}

/// `[gateway]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub sip_udp: Option<Spanned<String>>,
    pub sip_tcp: Option<Spanned<String>>,
    pub metrics: Option<Spanned<String>>,
    pub advertised: Option<Spanned<String>>,
    pub record_route: Option<bool>,
    pub mark_legacy: Option<Vec<Spanned<String>>>,
    pub replica: Option<Spanned<String>>,
}

/// `[new_number]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNewNumber {
    pub number: Spanned<String>,
    pub default_queue: Option<Spanned<String>>,
}

/// `[[queue]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub name: Spanned<String>,
    pub target: Option<Spanned<String>>,
    pub backends: Spanned<Vec<Spanned<String>>>,
}

/// `[[area]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArea {
    pub code: Spanned<String>,
    pub name: Option<String>,
    pub queue: Spanned<String>,
    pub launch: Option<Spanned<Datetime>>,
    pub answer_before_launch: Option<bool>,
}

/// `[[trunk]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrunk {
    pub name: Spanned<String>,
    pub sources: Spanned<Vec<Spanned<String>>>,
    pub origin_area: Option<Spanned<String>>,
}

/// `[[legacy]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLegacy {
    pub number: Spanned<String>,
    pub name: Option<String>,
    pub queue: Spanned<String>,
    pub parallel_from: Spanned<Datetime>,
    pub retired_from: Spanned<Datetime>,
    pub decommissioned_from: Option<Spanned<Datetime>>,
    pub when_retired: Spanned<RawTreatment>,
    pub max_share: Option<Spanned<f64>>,
}

/// `when_retired = { treatment = "...", ... }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTreatment {
    pub treatment: String,
    pub queue: Option<String>,
    pub status: Option<u16>,
    pub reason: Option<String>,
}

/// `[retirement]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetirement {
    pub max_share: Option<Spanned<f64>>,
}
