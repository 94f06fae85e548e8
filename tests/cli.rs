//! The binary's command tree as a user meets it: every subcommand's `--help`, `--version`, bad
//! flags and values (exit 2 naming them; 3 under `check`), and every command line the README
//! shows parses (run with `--help` appended, so nothing is started), and a report piped into a
//! reader that leaves early ends without a panic.

use std::process::{Command, Output};

const SUBCOMMANDS: [&str; 6] = ["test", "sim", "check", "inspect", "model", "completions"];

fn raftkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(args)
        .output()
        .expect("run raftkv")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_subcommand_help_exits_0_in_one_style() {
    let root = raftkv(&["--help"]);
    let (out, err) = text(&root);
    assert_eq!(root.status.code(), Some(0), "{err}");
    for sub in SUBCOMMANDS {
        assert!(out.contains(sub), "`raftkv --help` lists {sub}: {out}");
        let help = raftkv(&[sub, "--help"]);
        let (out, err) = text(&help);
        assert_eq!(help.status.code(), Some(0), "raftkv {sub} --help: {err}");
        assert!(
            out.contains(&format!("Usage: raftkv {sub}")),
            "raftkv {sub} --help: {out}"
        );
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = raftkv(&["--version"]);
    let (stdout, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let want = format!("raftkv {}", env!("CARGO_PKG_VERSION"));
    assert!(stdout.starts_with(&want), "{stdout}");
}

#[test]
fn a_bad_flag_exits_2_naming_it() {
    for args in [
        &["--no-such-flag"][..],
        &["test", "--no-such-flag"],
        &["sim", "--no-such-flag"],
        &["inspect", "--no-such-flag", "dir"],
        &["completions", "--no-such-flag", "bash"],
    ] {
        let out = raftkv(args);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(2), "raftkv {args:?}: {err}");
        assert!(err.contains("--no-such-flag"), "raftkv {args:?}: {err}");
    }
    // `check` keeps its documented status for bad usage: 3 (its 2 means "unknown").
    let out = raftkv(&["check", "--no-such-flag", "h.jsonl"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn a_bad_value_exits_2_naming_flag_and_value() {
    for (args, names) in [
        (&["sim", "--faults", "delay,meteor"][..], "meteor"),
        (&["sim", "--nodes", "16"], "--nodes"),
        (&["sim", "--clients", "0"], "--clients"),
        (&["test", "--node-count", "five"], "five"),
        (&["inspect", "--kind", "bogus", "dir"], "bogus"),
        (&["inspect", "--key", "3", "dir"], "--state"),
        (&["inspect", "--state", "--raw", "dir"], "--raw"),
        (&["inspect"], "DIR"),
        (&["completions", "tcsh"], "tcsh"),
    ] {
        let out = raftkv(args);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(2), "raftkv {args:?}: {err}");
        assert!(err.contains(names), "raftkv {args:?}: {err}");
    }
    for (args, names) in [
        (&["check", "--time-limit", "-1", "h"][..], "--time-limit"),
        (&["check", "--failed-cas", "maybe", "h"], "maybe"),
        (&["check", "--init", "{", "h"], "--init"),
        (&["check"], "FILE"),
    ] {
        let out = raftkv(args);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(3), "raftkv {args:?}: {err}");
        assert!(err.contains(names), "raftkv {args:?}: {err}");
    }
}

#[test]
fn completions_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = raftkv(&["completions", shell]);
        let (stdout, err) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{shell}: {err}");
        for sub in ["test", "sim", "check", "inspect"] {
            assert!(stdout.contains(sub), "{shell} completions lack {sub}");
        }
    }
}

/// Splits a command line into words as a POSIX shell would for the simple lines the README
/// shows: blanks separate words, single and double quotes group and are removed.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = vec![];
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The arguments after the program of a `raftkv ...`, `./target/release/raftkv ...` or
/// `cargo run --release -- ...` line, after any `VAR=value` assignments and before any
/// redirection or pipe; `None` for any other line.
fn raftkv_args(line: &str) -> Option<Vec<String>> {
    let line = line.split(" #").next().unwrap_or(line).trim();
    let words: Vec<String> = shell_words(line)
        .into_iter()
        .skip_while(|w| !w.starts_with('-') && w.contains('='))
        .take_while(|w| ![">", "<", "|", "&&", ";"].contains(&w.as_str()))
        .collect();
    let program = words.first()?;
    let rest = if program == "raftkv" || program.ends_with("/raftkv") {
        &words[1..]
    } else if words.len() >= 4 && words[..4] == ["cargo", "run", "--release", "--"] {
        &words[4..]
    } else {
        return None;
    };
    Some(rest.to_vec())
}

/// The command lines of README.md: every line of its code blocks (continuations joined) and
/// every inline code span of the prose, leaving out synopses (with `[` or `...`) and lines with
/// an upper-case placeholder for a flag's value (`--seed S`).
fn readme_command_lines() -> Vec<Vec<String>> {
    let readme = include_str!("../README.md");
    let mut lines = vec![];
    let mut prose = String::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if in_block {
            pending.push_str(line.trim_end_matches('\\'));
            if !line.ends_with('\\') {
                lines.push(std::mem::take(&mut pending));
            }
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    let spans = prose.split('`').skip(1).step_by(2);
    lines.extend(spans.map(|s| s.replace('\n', " ")));
    lines
        .iter()
        .filter(|l| !l.contains('[') && !l.contains("...") && !has_placeholder_value(l))
        .filter_map(|l| raftkv_args(l))
        .collect()
}

/// True when a flag's value is an upper-case placeholder (`--seed S`, `--partition-shapes SHAPE`);
/// a placeholder for a positional argument (`DIR`) parses like any path.
fn has_placeholder_value(line: &str) -> bool {
    let words = shell_words(line);
    words
        .windows(2)
        .any(|pair| pair[0].starts_with("--") && pair[1].chars().all(|c| c.is_ascii_uppercase()))
}

#[test]
fn every_command_line_in_the_readme_parses() {
    let commands = readme_command_lines();
    assert!(
        commands.len() >= 20,
        "found only {} command lines in README.md: {commands:?}",
        commands.len()
    );
    for args in &commands {
        let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
        with_help.push("--help");
        let out = raftkv(&with_help);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(0), "raftkv {args:?}: {err}");
    }
}

#[test]
fn shell_words_groups_quotes() {
    assert_eq!(
        shell_words(r#"raftkv inspect --key '"3"' --kind "normal,noop"  d"#),
        [
            "raftkv",
            "inspect",
            "--key",
            "\"3\"",
            "--kind",
            "normal,noop",
            "d"
        ]
    );
}

/// `raftkv sim | head -1`: the simulator prints a line per seed; the reader takes one and
/// closes the pipe. The tool must end as Unix tools do (SIGPIPE), not panic in `println!`.
#[test]
fn a_report_whose_reader_leaves_ends_without_a_panic() {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["sim", "--seeds", "20000", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run raftkv sim");
    let mut first = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read a line");
    assert!(first.starts_with("seed"), "{first}");
    // The reader is dropped here: the pipe's read end is closed.
    let mut err = String::new();
    let mut stderr = child.stderr.take().expect("piped stderr");
    stderr.read_to_string(&mut err).expect("read stderr");
    let status = child.wait().expect("wait");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.signal(), Some(13), "ended by SIGPIPE: {status:?}");
}
