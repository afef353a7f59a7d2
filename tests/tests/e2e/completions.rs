//! Shell completions and man pages from the built `latchkey`: bash loads its script and
//! completes subcommands and options, zsh and fish scripts name the command, and `latchkey man`
//! writes a page per visible subcommand that `man` renders.

use std::process::Command;

use latchkey_tests::{bin, have, stderr, stdout, TestEnv};

fn completions(env: &TestEnv, shell: &str) -> String {
    let out = env
        .command(&bin("latchkey"))
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "{shell}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn bash_loads_the_script_and_completes_commands_and_options() {
    let env = TestEnv::bare();
    let script = r#"
        source <("$LATCHKEY" completions bash) || exit 10
        complete -p latchkey || exit 11
        # What bash offers after `latchkey ru` and after `latchkey run --env-`.
        COMP_WORDS=(latchkey ru); COMP_CWORD=1; COMP_LINE='latchkey ru'; COMP_POINT=${#COMP_LINE}
        _latchkey latchkey ru latchkey
        echo "words: ${COMPREPLY[*]}"
        COMP_WORDS=(latchkey run --env-); COMP_CWORD=2; COMP_LINE='latchkey run --env-'; COMP_POINT=${#COMP_LINE}
        _latchkey latchkey --env- run
        echo "options: ${COMPREPLY[*]}"
    "#;
    let out = env
        .command(std::path::Path::new("bash"))
        .arg("-c")
        .arg(script)
        .env("LATCHKEY", bin("latchkey"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("-F _latchkey latchkey"), "{text}");
    assert!(text.contains("words: run"), "{text}");
    assert!(text.contains("--env-file"), "{text}");
}

#[test]
fn zsh_and_fish_scripts_name_the_command_and_its_subcommands() {
    let env = TestEnv::bare();
    let zsh = completions(&env, "zsh");
    assert!(zsh.starts_with("#compdef latchkey"), "{zsh}");
    let fish = completions(&env, "fish");
    assert!(fish.contains("complete -c latchkey"), "{fish}");
    for script in [&zsh, &fish] {
        for word in ["kube-credential", "env-file", "completions"] {
            assert!(script.contains(word), "{word}");
        }
    }
    // Checked by the shells themselves where they are installed.
    for (shell, script) in [("zsh", &zsh), ("fish", &fish)] {
        if have(shell) {
            let path = env.root().join(format!("latchkey.{shell}"));
            std::fs::write(&path, script).unwrap();
            let out = Command::new(shell).arg("-n").arg(&path).output().unwrap();
            assert!(out.status.success(), "{shell}: {}", stderr(&out));
        }
    }
    let out = env
        .command(&bin("latchkey"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_writes_a_page_per_subcommand_that_man_renders() {
    let env = TestEnv::bare();
    let dir = env.root().join("man/man1");
    let out = env
        .command(&bin("latchkey"))
        .arg("man")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in [
        "latchkey.1",
        "latchkey-run.1",
        "latchkey-kube-credential.1",
        "latchkey-provider-list.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} missing: {pages:?}");
    }
    // Hidden commands and clap's own `help` get no page.
    assert!(!pages
        .iter()
        .any(|p| p == "latchkey-man.1" || p.contains("help")));
    for page in &pages {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.lines().any(|l| l.starts_with(".TH ")), "{page}");
    }
    let top = std::fs::read_to_string(dir.join("latchkey.1")).unwrap();
    assert!(
        top.contains("socket"),
        "the global options are on latchkey(1)"
    );
    if have("man") {
        let out = Command::new("man")
            .arg("-l")
            .arg(dir.join("latchkey-run.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("env-file"), "{text}");
    }
}
