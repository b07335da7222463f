#![allow(clippy::unwrap_used)]
//! A ConfigMap update as the kubelet makes it (an atomic swap of the `..data` symlink) reloads
//! the mappings through the SIGHUP path: a valid file serves at once, a broken one is counted
//! and the mappings before it keep serving. The gateway runs with `DUALGATE_WATCH_CONFIG=1`
//! (set for this test binary only, which holds just this test).

mod common;

use common::http::get;
use common::*;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;
use tokio::time::sleep;

/// Writes `text` as version `v` of the mounted ConfigMap in `dir` and swaps `..data` to it.
fn publish(dir: &Path, v: &str, text: &str) {
    let version = dir.join(format!("..{v}"));
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(version.join("mappings.toml"), text).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(format!("..{v}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

async fn wait_reloads(gw: &Gateway, result: &str, want: f64) {
    for _ in 0..100 {
        let got = metric(
            &gw.scrape(),
            "dualgate_config_reloads_total",
            &[("result", result)],
        );
        if got == Some(want) {
            return;
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("reloads {result} never reached {want}:\n{}", gw.scrape());
}

async fn page(gw: &Gateway) -> String {
    let m = gw.metrics;
    tokio::task::spawn_blocking(move || get(m, "/").body)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_configmap_symlink_swap_reloads_valid_mappings_and_keeps_serving_on_a_broken_one() {
    // Edition 2021, one test in this binary: the child inherits it.
    std::env::set_var("DUALGATE_WATCH_CONFIG", "1");
    let f = Peer::bind("127.0.0.1").await;
    let gw = Mapping::one_backend(&f.uri())
        .when_retired(ANNOUNCE)
        .start(&[])
        .await;
    let dir = gw.config.parent().unwrap().to_path_buf();
    let v1 = std::fs::read_to_string(&gw.config).unwrap();
    // Lay the file out as the kubelet mounts a ConfigMap: mappings.toml -> ..data/mappings.toml.
    publish(&dir, "v1", &v1);
    let link = dir.join("mappings.toml.link");
    symlink("..data/mappings.toml", &link).unwrap();
    std::fs::rename(&link, &gw.config).unwrap();
    wait_reloads(&gw, "success", 2.0).await;

    let v2 = v1.replace("provincial hotline", "provincial hotline v2");
    publish(&dir, "v2", &v2);
    wait_reloads(&gw, "success", 3.0).await;
    let html = page(&gw).await;
    assert!(html.contains("provincial hotline v2"), "{html}");
    let sha = dualgate::http::sha256_hex(v2.as_bytes());
    assert!(html.contains(&sha), "sha256 {sha} not on the page: {html}");

    publish(&dir, "v3", &v2.replace("[[queue]]", "[[queue]]\nbogus = 1"));
    wait_reloads(&gw, "failure", 1.0).await;
    let html = page(&gw).await;
    assert!(html.contains("provincial hotline v2"), "{html}");
    assert!(html.contains("3 ok, 1 rejected"), "{html}");
    assert!(
        html.contains(&sha),
        "the hash must stay that of the mappings served"
    );
}
