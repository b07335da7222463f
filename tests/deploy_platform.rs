#![allow(clippy::unwrap_used)]
//! The platform files in `deploy/`, checked offline by the tools that will load them:
//! `kubectl kustomize` renders `deploy/k8s`, PyPI's `kubernetes-validate` (run as
//! `python3 -m kubernetes_validate`) checks the result
//! against the Kubernetes schemas, and the rendered objects keep the promises README makes
//! (replicas, anti-affinity, disruption budget, source address, probes, reload, secret);
//! `systemd-analyze` verifies the unit and scores its hardening; the Dockerfile (which cannot be
//! built here: no image registry is reachable) is parsed and checked statically.
//!
//! A missing tool fails its test with the way to install it: `.ci/run` installs them all.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a tool, failing the test with `install` when it cannot be started.
fn run(bin: &str, args: &[&str], install: &str) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{bin}` ({e}): {install}"))
}

fn rendered() -> String {
    let out = run(
        "kubectl",
        &["kustomize", "deploy/k8s"],
        "install kubectl (Debian's `kubernetes-client`, or the image's `kubectl`), e.g. with .ci/run",
    );
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/k8s: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The rendered objects, as JSON (YAML read by Python's PyYAML, which kubernetes-validate
/// brings along).
fn objects() -> Vec<Value> {
    let dir = std::env::temp_dir().join(format!("dualgate-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, rendered()).unwrap();
    let out = run(
        "python3",
        &[
            "-c",
            "import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            file.to_str().unwrap(),
        ],
        "python3 with PyYAML is needed (pip install kubernetes-validate brings it)",
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn kustomize_renders_manifests_that_validate_against_the_kubernetes_schemas() {
    let dir = std::env::temp_dir().join(format!("dualgate-kv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rendered.yaml");
    std::fs::write(&file, rendered()).unwrap();
    let out = run(
        "python3",
        &[
            "-m",
            "kubernetes_validate",
            "--strict",
            file.to_str().unwrap(),
        ],
        "install it with `pip install kubernetes-validate` (PyPI; .ci/run does)",
    );
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // It exits 0 whatever it finds: read its verdicts.
    assert!(!text.contains("ERROR"), "{text}");
    for r in [
        "deployment/dualgate",
        "poddisruptionbudget/dualgate",
        "service/dualgate-sip",
        "configmap/dualgate-mappings",
        "namespace/dualgate",
    ] {
        assert!(
            text.contains(&format!("passed for resource {r} ")),
            "{r}: {text}"
        );
    }
    // The one custom resource has no schema there; its shape is checked below.
    assert!(text.contains("kind PodMonitor"), "{text}");
}

#[test]
fn the_rendered_deployment_keeps_the_promises_of_the_readme() {
    let objs = objects();
    let d = kind(&objs, "Deployment");
    let spec = &d["spec"];
    assert!(spec["replicas"].as_u64().unwrap() >= 3);
    let pod_labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(&spec["selector"]["matchLabels"], pod_labels);
    let pod = &spec["template"]["spec"];
    // One replica per node, required; host networking (no NAT either way).
    let anti =
        &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(&anti["labelSelector"]["matchLabels"], pod_labels);
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--metrics=0.0.0.0:9090"), "{args:?}");
    assert!(args.contains(&"--advertised=$(NODE_IP):5060"), "{args:?}");
    let env = |name: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
    };
    assert_eq!(
        env("NODE_IP").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "status.hostIP"
    );
    assert_eq!(env("DUALGATE_WATCH_CONFIG").unwrap()["value"], "1");
    assert_eq!(env("NO_COLOR").unwrap()["value"], "1");
    let port = |name: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (
            port("sip-udp")["containerPort"].as_u64(),
            port("sip-udp")["protocol"].as_str()
        ),
        (Some(5060), Some("UDP"))
    );
    assert_eq!(
        (
            port("sip-tcp")["containerPort"].as_u64(),
            port("sip-tcp")["protocol"].as_str()
        ),
        (Some(5060), Some("TCP"))
    );
    assert_eq!(port("http")["containerPort"], 9090);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    // Mappings from the ConfigMap (as a directory, so updates reach the pod), the key from the
    // Secret, mounted where the mapping file's secret_file points.
    let vols = pod["volumes"].as_array().unwrap();
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount_of = |vol: &Value| {
        mounts.iter().find(|m| m["name"] == vol["name"]).unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let cm = vols
        .iter()
        .find(|v| v["configMap"]["name"] == "dualgate-mappings")
        .unwrap();
    assert!(mounts.iter().all(|m| m.get("subPath").is_none()));
    assert!(
        args.contains(&format!("--config={}/mappings.toml", mount_of(cm)).as_str()),
        "{args:?}"
    );
    let secret = vols
        .iter()
        .find(|v| v["secret"]["secretName"] == "dualgate-branch-secret")
        .unwrap();
    let mappings = std::fs::read_to_string(root().join("deploy/k8s/mappings.toml")).unwrap();
    assert!(
        mappings.contains(&format!(
            "\nsecret_file = \"{}/branch-secret\"",
            mount_of(secret)
        )),
        "secret_file must point into the Secret's mount"
    );
    // The ConfigMap holds exactly that file.
    assert_eq!(
        kind(&objs, "ConfigMap")["data"]["mappings.toml"],
        mappings.as_str()
    );

    let pdb = kind(&objs, "PodDisruptionBudget");
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], pod_labels);
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);

    let svc = kind(&objs, "Service");
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Local");
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "service selector {k}");
    }
    let protos: Vec<(u64, &str)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_u64().unwrap(), p["protocol"].as_str().unwrap()))
        .collect();
    assert_eq!(protos, vec![(5060, "UDP"), (5060, "TCP")]);

    let pm = kind(&objs, "PodMonitor");
    assert_eq!(pm["apiVersion"], "monitoring.coreos.com/v1");
    for (k, v) in pm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "podmonitor selector {k}");
    }
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "http");
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["path"], "/metrics");
}

/// The Kubernetes mappings are the shipped ones with another `[gateway]` table, and they pass
/// `dualgate check` (with a branch key file where the Secret would be).
#[test]
fn the_k8s_mappings_pass_check_and_differ_from_the_shipped_file_only_in_the_gateway_table() {
    let shipped = std::fs::read_to_string(root().join("mappings/fujian.toml")).unwrap();
    let k8s = std::fs::read_to_string(root().join("deploy/k8s/mappings.toml")).unwrap();
    let gateway_end = |t: &str| t.find("\n[new_number]").unwrap();
    assert_eq!(
        &shipped[gateway_end(&shipped)..],
        &k8s[gateway_end(&k8s)..],
        "deploy/k8s/mappings.toml drifted from mappings/fujian.toml outside [gateway]"
    );
    let dir = std::env::temp_dir().join(format!("dualgate-k8s-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("branch-secret");
    std::fs::write(&key, "00112233445566778899aabbccddeeff\n").unwrap();
    let file = dir.join("mappings.toml");
    std::fs::write(
        &file,
        k8s.replace("/etc/dualgate/secret/branch-secret", key.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dualgate"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("branch key: configured"), "{text}");
    assert!(text.contains("sip udp 0.0.0.0:5060,"), "{text}");
}

/// One Dockerfile instruction: keyword and arguments (continuations joined).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || (l.is_empty() && current.is_empty()) {
            continue;
        }
        match l.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(l);
                let (k, a) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((k.to_ascii_uppercase(), a.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_the_gateway_as_a_non_root_user() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let ins = instructions(&text);
    let froms: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(froms.len() >= 2, "not multi-stage: {ins:?}");
    assert!(
        ins[froms[0]].1.ends_with(" AS build"),
        "{:?}",
        ins[froms[0]]
    );
    let last = &ins[*froms.last().unwrap()..];
    let get = |k: &str| {
        last.iter()
            .filter(|(kk, _)| kk == k)
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>()
    };
    assert!(get("COPY")
        .iter()
        .any(|a| a.starts_with("--from=build ") && a.ends_with(" /usr/local/bin/dualgate")));
    let user = get("USER");
    let user = user.last().expect("a USER in the final stage");
    let uid = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&uid), "runs as {user}");
    // USER comes before the entrypoint runs (nothing after it switches back).
    let mut exposed: Vec<&str> = get("EXPOSE")
        .iter()
        .flat_map(|a| a.split_whitespace())
        .collect();
    exposed.sort_unstable();
    assert_eq!(exposed, vec!["5060/tcp", "5060/udp", "9090/tcp"]);
    let entry: Vec<String> =
        serde_json::from_str(get("ENTRYPOINT").last().unwrap()).expect("exec-form ENTRYPOINT");
    assert_eq!(entry, vec!["/usr/local/bin/dualgate"]);
    let cmd: Vec<String> = serde_json::from_str(get("CMD").last().unwrap()).expect("exec-form CMD");
    assert_eq!(
        cmd[..3],
        ["run", "--config", "/etc/dualgate/mappings/mappings.toml"]
    );
    assert!(get("VOLUME")
        .iter()
        .any(|v| v.contains("/etc/dualgate/mappings")));
    // The build context leaves out what would bloat it or leak into it.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target/"), "{ignore}");
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    run(
        "systemd-analyze",
        args,
        "install Debian's `systemd` package (systemd-analyze), e.g. with .ci/run",
    )
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(root().join("deploy/dualgate.service")).unwrap();
    for line in [
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Environment=NO_COLOR=1",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line}");
    }
    // Verify it with the binary where the unit expects it (the built one).
    let dir = std::env::temp_dir().join(format!("dualgate-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dualgate.service");
    std::fs::write(
        &file,
        unit.replace("/usr/local/bin/dualgate", env!("CARGO_BIN_EXE_dualgate")),
    )
    .unwrap();
    let out = systemd_analyze(&["verify", file.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("dualgate.service:"),
        "{text}"
    );
    let out = systemd_analyze(&["security", "--offline=yes", file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for dualgate.service: ")
                .nth(1)
        })
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score: {text}"));
    assert!(
        score <= 2.0,
        "exposure {score} (was 1.7 when hardened):\n{text}"
    );
    assert!(Path::new(env!("CARGO_BIN_EXE_dualgate")).exists());
}
