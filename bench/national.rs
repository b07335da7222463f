//! The national mapping of the scale benchmarks (issue #12): `areas` area codes (≈ 340 in China)
//! with a queue each, and `legacy` legacy numbers spread over them, all in their parallel period
//! on 2025-04-20. Shared by the criterion bench (benches/handle.rs) and `loadgen national`, which
//! writes it to a file for the start-up, reload and scrape measurements. Every queue's backend is
//! `127.0.0.1:backend_port`.

use std::fmt::Write as _;

/// Area codes in the numbering plan's shapes: `010`, `020`..`029`, then `0` + three digits.
pub fn area_codes(n: usize) -> Vec<String> {
    let mut v = vec!["010".to_string()];
    v.extend((20..30).map(|i| format!("0{i}")));
    v.extend((310..1000).map(|i| format!("0{i}")));
    v.truncate(n);
    v
}

/// The canonical form of legacy number `i` of `areas` (the area code and an 8-digit local
/// number starting with 8).
pub fn legacy_number(codes: &[String], i: usize) -> String {
    let code = &codes[i % codes.len()];
    format!("{code}8{:07}", 1_000_000 + i / codes.len())
}

/// The mapping file's text.
pub fn mapping(
    areas: usize,
    legacy: usize,
    sip_port: u16,
    metrics_port: u16,
    backend_port: u16,
) -> String {
    let codes = area_codes(areas);
    let mut t = String::with_capacity(200 * (areas + legacy));
    let _ = write!(
        t,
        "# National mapping: {} areas, {legacy} legacy numbers (bench/national.rs).\n\
         [gateway]\nsip_udp = \"127.0.0.1:{sip_port}\"\nsip_tcp = \"127.0.0.1:{sip_port}\"\n\
         metrics = \"127.0.0.1:{metrics_port}\"\nadvertised = \"127.0.0.1:{sip_port}\"\n\
         record_route = true\nmark_legacy = [\"history-info\"]\nreplica = \"bench\"\n\n\
         [new_number]\nnumber = \"12356\"\ndefault_queue = \"q{}\"\n\n[probe]\nenabled = false\n\n",
        codes.len(),
        codes[0]
    );
    for c in &codes {
        let _ = write!(
            t,
            "[[queue]]\nname = \"q{c}\"\ntarget = \"12356\"\nbackends = [\"sip:127.0.0.1:{backend_port};transport=udp\"]\n\n\
             [[area]]\ncode = \"{c}\"\nname = \"Area {c}\"\nqueue = \"q{c}\"\nlaunch = 2025-04-07T00:00:00+08:00\n\n"
        );
    }
    let _ = write!(
        t,
        "[[trunk]]\nname = \"loopback\"\nsources = [\"127.0.0.0/8\"]\norigin_area = \"{}\"\nrate = 0\n\n",
        codes[0]
    );
    for i in 0..legacy {
        let n = legacy_number(&codes, i);
        let code = &codes[i % codes.len()];
        let _ = write!(
            t,
            "[[legacy]]\nnumber = \"{n}\"\nname = \"Legacy {i}\"\nqueue = \"q{code}\"\n\
             parallel_from = 2025-04-07T00:00:00+08:00\nretired_from = 2025-05-07T00:00:00+08:00\n\
             when_retired = {{ treatment = \"route\" }}\n\n"
        );
    }
    t
}
