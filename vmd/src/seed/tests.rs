//! Tests of the seed documents and the user-data check.

use super::*;

fn seed() -> Seed {
    Seed {
        hostname: "web1".into(),
        instance_id: "iid-web1-0123abcd".into(),
        user: "lab".into(),
        ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBd2 me@host # not: yaml".into()],
        password_hash: None,
        user_data: None,
    }
}

#[test]
fn meta_data_names_the_instance_and_host() {
    let doc: serde_json::Value = serde_json::from_str(&seed().meta_data()).expect("json");
    assert_eq!(doc["instance-id"], "iid-web1-0123abcd");
    assert_eq!(doc["local-hostname"], "web1");
}

#[test]
fn user_data_is_cloud_config_whose_values_cannot_escape() {
    let text = seed().user_data();
    let body = text.strip_prefix("#cloud-config\n").expect("header");
    let doc: serde_json::Value = serde_json::from_str(body).expect("json body");
    let user = &doc["users"][0];
    assert_eq!(user["name"], "lab");
    assert_eq!(user["lock_passwd"], true);
    assert!(user.get("passwd").is_none());
    assert_eq!(user["ssh_authorized_keys"][0], seed().ssh_keys[0]);
    assert_eq!(doc["ssh_pwauth"], false);
    let with_password = Seed {
        password_hash: Some("$6$salt$hash".into()),
        ..seed()
    };
    let body = with_password.user_data();
    let doc: serde_json::Value =
        serde_json::from_str(body.strip_prefix("#cloud-config\n").expect("hdr")).expect("json");
    assert_eq!(doc["users"][0]["passwd"], "$6$salt$hash");
    assert_eq!(doc["users"][0]["lock_passwd"], false);
    assert!(
        check_user_data(&text).is_ok(),
        "our own document is valid YAML"
    );
}

#[test]
fn owner_user_data_goes_last_in_a_multipart_document() {
    let script = "#!/bin/sh\necho ==vmd-seed-00000000== >/tmp/x\n";
    let text = Seed {
        user_data: Some(script.into()),
        ..seed()
    }
    .user_data();
    assert!(text.starts_with("Content-Type: multipart/mixed; boundary=\"==vmd-seed-00000001==\""));
    let ours = text.find("text/cloud-config").expect("ours");
    let theirs = text.find("text/x-shellscript").expect("theirs");
    assert!(ours < theirs);
    assert!(text.contains(script) && text.ends_with("--==vmd-seed-00000001==--\r\n"));
}

#[test]
fn user_data_check_accepts_mappings_and_scripts_only() {
    assert!(check_user_data("#cloud-config\npackages: [htop]\nruncmd:\n  - [ls, /]\n").is_ok());
    assert!(check_user_data("#cloud-config\n").is_ok());
    assert!(check_user_data("#!/bin/bash\n: {{{ not yaml\n").is_ok());
    for (bad, why) in [
        ("#cloud-config\n- a list\n", "mapping"),
        ("#cloud-config\nkey: [unclosed\n", "not valid YAML"),
        ("#cloud-config\na: 1\n---\nb: 2\n", "several YAML documents"),
        ("packages: []\n", "must start with"),
    ] {
        let err = check_user_data(bad).expect_err(bad);
        assert!(err.contains(why), "{bad:?}: {err}");
    }
    let deep = format!(
        "#cloud-config\na: {}1{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(check_user_data(&deep)
        .expect_err("deep")
        .contains("nests deeper"));
    // Aliases are not expanded: a "billion laughs" document is checked in linear time.
    let mut laughs = String::from("#cloud-config\na0: &a0 [lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        laughs.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert!(check_user_data(&laughs).is_ok());
}
