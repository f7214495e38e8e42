//! The built-in rule base: what is known to be dangerous in a command line, judged on its parsed
//! structure (which program runs, with which arguments, fed from and into what), not on its
//! spelling alone.
//!
//! Each rule names a mechanism: a destructive delete, a write to a disk, a fork bomb, running
//! what was just downloaded or decoded, a shell connected to the network (reverse or bind), a
//! shell spawned from inside another program (the GTFOBins escapes), a command run through
//! another program's hook, reading secrets, writing where code runs later, erasing history,
//! changing privileges, loading a library into a process, and sending a file off the machine.

use super::parse::{
    Arg, Cmd, Origin, RedirKind, Script, Span, base_name, find_exec_commands, is_shell,
};
use super::paths::{PathClass, classify, paths_in};
use super::{Finding, Severity};

/// Programs that fetch from the network.
const DOWNLOADERS: &[&str] = &[
    "curl",
    "wget",
    "fetch",
    "aria2c",
    "lwp-download",
    "lwp-request",
    "GET",
    "http",
    "https",
    "xh",
    "tftp",
    "ftp",
    "lftp",
    "axel",
    "httpie",
];

/// Programs that talk to the network.
const NETWORK: &[&str] = &[
    "curl",
    "wget",
    "nc",
    "ncat",
    "netcat",
    "socat",
    "telnet",
    "ssh",
    "scp",
    "sftp",
    "ftp",
    "tftp",
    "lftp",
    "rsync",
    "openssl",
    "aria2c",
    "smbclient",
    "rlogin",
    "rsh",
    "rcp",
    "ab",
    "http",
    "xh",
    "whois",
    "finger",
    "socket",
    "cryptcat",
    "sshpass",
    "nmap",
    "ncftp",
];

/// Interpreters that run a program given as text or on standard input.
const INTERPRETERS: &[&str] = &[
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "php",
    "node",
    "nodejs",
    "lua",
    "luajit",
    "tclsh",
    "wish",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "busybox",
    "R",
    "Rscript",
    "julia",
    "jjs",
    "jrunscript",
    "groovy",
    "scala",
    "irb",
    "expect",
    "gdb",
    "pwsh",
    "osascript",
    "deno",
    "bun",
];

/// Text in a program that runs another program.
const EXEC_CALLS: &[&str] = &[
    "system(",
    "system \"",
    "system '",
    "exec(",
    "exec \"",
    "exec '",
    "exec /",
    "execve",
    "execl(",
    "execvp",
    "popen(",
    "spawn(",
    "spawnsync",
    "subprocess",
    "os.system",
    "child_process",
    "os.execute",
    "io.popen",
    "getruntime().exec",
    "processbuilder",
    "proc_open",
    "shell_exec",
    "passthru",
    "pcntl_exec",
    "%x(",
    "%{lua:",
    ".shell ",
    ".system ",
    "--exec",
    "os.popen",
    "pty.spawn",
    "kernel.exec",
    "open3",
    "io.popen",
    "|& getline",
    "spawn /",
    "spawn sh",
    "spawn bash",
    "process.start",
    "run(",
    ":!",
    "|sh",
    "| sh",
    "|bash",
    "| bash",
    "exec=",
    "\\!",
];

/// Text in a program that opens a network connection or listens.
const SOCKET_CALLS: &[&str] = &[
    "socket(",
    "socket.socket",
    "io::socket",
    "tcpsocket",
    "tcpserver",
    "net.connect",
    "require(\"net\")",
    "require('net')",
    "fsockopen",
    "java.net.socket",
    "serversocket",
    "syscall.socket",
    "/inet/tcp",
    "/inet/udp",
    "createconnection",
    "createserver",
    "net.socket",
    "socket.tcp",
    ":connect(",
    "s.connect",
    ".connect((",
    "urlopen",
    "urlretrieve",
    "requests.",
    "http.request",
    "net/http",
    "net::http",
    "lwp::",
    "fetch(",
    "download(",
    "new url(",
    "xmlhttprequest",
    "http.get(",
    "https.get(",
    "socket:",
    "tcp(",
    "[socket ",
];

/// Text in a program that listens for connections.
const LISTEN_CALLS: &[&str] = &[
    ".listen(",
    "bind(",
    ".accept(",
    "tcpserver",
    "serversocket",
    "createserver",
    "listen=",
    "sockaddrinet4{port",
    "/inet/tcp/0",
    "localport",
];

/// Text in a program that loads a shared library into its process.
const LIBRARY_CALLS: &[&str] = &[
    "dlopen",
    "cdll",
    "loadlibrary",
    "fiddle",
    "ffi.load",
    "ffi_lib",
    "load_extension",
    "ctypes",
    "enable -f",
    "load_module",
    "system.loadlibrary",
    "-engine",
    "--load-plugin",
    "dl_load",
    "package.loadlib",
];

/// Severity of reading and of writing each class of path.
fn read_severity(class: PathClass) -> Severity {
    match class {
        PathClass::Credentials => Severity::Critical,
        PathClass::Accounts => Severity::Medium,
        PathClass::Persistence | PathClass::History => Severity::Low,
        PathClass::Disk => Severity::Medium,
        PathClass::System | PathClass::Root => Severity::Low,
    }
}

/// How a command touches a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    Delete,
    /// Permissions or ownership.
    Modify,
}

/// The findings so far, one per rule (the most severe, first place it was seen).
pub(super) struct Findings {
    list: Vec<Finding>,
}

impl Findings {
    fn add(&mut self, rule: &'static str, severity: Severity, span: Span, message: String) {
        if let Some(f) = self.list.iter_mut().find(|f| f.rule == rule) {
            if severity > f.severity {
                f.severity = severity;
                f.message = message;
                f.span = span;
            }
            return;
        }
        self.list.push(Finding {
            rule,
            severity,
            message,
            span,
        });
    }

    fn has(&self, rule: &str) -> bool {
        self.list.iter().any(|f| f.rule == rule)
    }
}

/// Runs every rule over a parsed command line; `text` is what was parsed.
pub(super) fn check(script: &Script, text: &str) -> Vec<Finding> {
    let mut f = Findings { list: Vec::new() };
    // Characters that make a command display differently from what runs.
    if let Some((at, ch)) = text.char_indices().find(|(_, c)| {
        matches!(*c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200b}'..='\u{200f}' | '\u{feff}')
    }) {
        f.add(
            "hidden-characters",
            Severity::High,
            (at, at + ch.len_utf8()),
            format!(
                "contains U+{:04X}, an invisible or direction-changing character: what is shown \
                 is not what runs",
                ch as u32
            ),
        );
    }
    let depth = super::parse::nesting(text);
    if depth > super::parse::MAX_NESTING {
        f.add(
            "obfuscated",
            Severity::High,
            (0, text.len()),
            format!(
                "nested {depth} levels deep: no command needs that, and it hides what runs \
                 (read word by word instead of parsed)"
            ),
        );
    }
    if let Some(span) = script.fork_bomb {
        f.add(
            "fork-bomb",
            Severity::Critical,
            span,
            "a function that starts itself in the background without end (a fork bomb): it \
             exhausts the process table until the machine stops answering"
                .into(),
        );
    }
    for (i, c) in script.commands.iter().enumerate() {
        paths(&mut f, c);
        destructive(&mut f, c);
        shells(&mut f, script, i, c);
        network(&mut f, script, i, c);
        privilege(&mut f, c);
        history(&mut f, c);
        misc(&mut f, c);
        code(&mut f, c);
    }
    temp_scripts(&mut f, script);
    downloads_run(&mut f, script);
    // A script gets less benefit of the doubt than a command typed and watched: what it
    // reads from system locations or the processes it stops, it does unattended.
    if script.unattended {
        for finding in &mut f.list {
            if matches!(finding.rule, "reads-system-files" | "kills-processes")
                && finding.severity == Severity::Low
            {
                finding.severity = Severity::Medium;
                finding.message.push_str(" (in an unattended script)");
            }
        }
    }
    let _ = text;
    f.list
}

/// Every path a command touches, and how.
fn accesses(c: &Cmd) -> Vec<(Access, &str, Span)> {
    let mut out = Vec::new();
    for r in &c.redirs {
        match r.kind {
            RedirKind::Write | RedirKind::Append | RedirKind::ReadWrite => {
                out.push((Access::Write, r.target.as_str(), r.span))
            }
            RedirKind::Read => out.push((Access::Read, r.target.as_str(), r.span)),
            RedirKind::Dup | RedirKind::Here => {}
        }
    }
    let operands = c.operands();
    let name = c.name.as_str();
    let last = operands.len().saturating_sub(1);
    // Their words are text, not files.
    let text_only = matches!(
        name,
        "echo"
            | "printf"
            | "alias"
            | "export"
            | "declare"
            | "local"
            | "set"
            | "unset"
            | "read"
            | "test"
            | "["
            | "[["
            | "expr"
            | "let"
            | "true"
            | "false"
            | ":"
    );
    for (i, a) in operands.iter().enumerate() {
        if text_only {
            break;
        }
        let access = match name {
            "rm" | "unlink" | "rmdir" | "shred" | "srm" | "wipe" => Access::Delete,
            "tee" | "touch" | "truncate" | "mkdir" | "mkfifo" | "mknod" => Access::Write,
            "chmod" | "chown" | "chgrp" | "chattr" | "setfacl" | "setcap" if i > 0 => {
                Access::Modify
            }
            "chmod" | "chown" | "chgrp" | "chattr" | "setfacl" | "setcap" => continue,
            "cp" | "install" | "rsync" | "scp" | "ln" | "mv" | "link" | "lwp-download"
            | "smbget" | "docker" | "kubectl" | "rclone"
                if i == last && last > 0 =>
            {
                Access::Write
            }
            "mv" => Access::Delete,
            "sed" | "perl" if c.has_flag(&["-i"]) || c.words().any(|w| w.starts_with("-i")) => {
                Access::Write
            }
            _ => Access::Read,
        };
        out.push((access, a.text.as_str(), a.span));
    }
    for a in &c.args {
        // `of=/dev/sda`, `--output=/etc/x`, `-filename=/etc/x`.
        if let Some((key, value)) = a.text.split_once('=')
            && (value.starts_with('/') || value.starts_with('~') || value.starts_with("$HOME"))
        {
            let key = key.trim_start_matches('-').to_ascii_lowercase();
            let access = if key == "if" || key.contains("input") {
                Access::Read
            } else if key == "of"
                || key.contains("out")
                || key.contains("file")
                || key.contains("log")
                || key.contains("dest")
                || key.contains("write")
            {
                Access::Write
            } else {
                Access::Read
            };
            out.push((access, value, a.span));
        }
    }
    for (k, a) in c.args.iter().enumerate() {
        let t = a.text.trim_start_matches('-');
        if a.text.starts_with('-')
            && t.len() > 2
            && (t.starts_with("out") || t.ends_with("out") || t.ends_with("output"))
            && let Some(v) = c.args.get(k + 1)
        {
            out.push((Access::Write, v.text.as_str(), v.span));
        }
    }
    for v in c.option_values(&[
        "-o",
        "--output",
        "-O",
        "--output-document",
        "-w",
        "--log-file",
        "--target-directory",
        "-t",
    ]) {
        if !(name == "curl" && v.text.starts_with('-')) {
            out.push((Access::Write, v.text.as_str(), v.span));
        }
    }
    out
}

fn paths(f: &mut Findings, c: &Cmd) {
    for (access, path, span) in accesses(c) {
        let Some(class) = classify(path) else {
            continue;
        };
        let p = path;
        match (access, class) {
            (Access::Read, PathClass::Credentials) => f.add(
                "reads-credentials",
                Severity::Critical,
                span,
                format!("reads `{p}`, which holds secrets (password hashes, keys or tokens)"),
            ),
            (Access::Read, PathClass::Accounts) => f.add(
                "reads-accounts",
                Severity::Medium,
                span,
                format!("reads `{p}`, the list of accounts an intruder enumerates first"),
            ),
            (Access::Read, PathClass::Disk) => f.add(
                "reads-disk",
                Severity::Medium,
                span,
                format!("reads the raw device `{p}`, bypassing file permissions"),
            ),
            (Access::Read, PathClass::Root) => {
                if !LISTERS.contains(&c.name.as_str()) {
                    f.add(
                        "reads-system-files",
                        Severity::Medium,
                        span,
                        format!("`{}` reads the whole of `{p}`", c.name),
                    )
                }
            }
            (Access::Read, PathClass::Persistence) if !READERS.contains(&c.name.as_str()) => f.add(
                "writes-persistence",
                Severity::High,
                span,
                format!("`{}` opens `{p}`, which runs code at login, boot or on a schedule", c.name),
            ),
            (Access::Read, cl) => f.add(
                "reads-system-files",
                read_severity(cl),
                span,
                format!("reads `{p}`, a system location"),
            ),
            (Access::Write, PathClass::Persistence) | (Access::Modify, PathClass::Persistence) => {
                f.add(
                    "writes-persistence",
                    Severity::Critical,
                    span,
                    format!(
                        "writes `{p}`, which runs code at login, boot or on a schedule: the \
                         usual way to stay on a machine"
                    ),
                )
            }
            (Access::Write | Access::Modify, PathClass::Credentials | PathClass::Accounts) => f.add(
                "writes-credentials",
                Severity::Critical,
                span,
                format!("changes `{p}`, which decides who may log in and as whom"),
            ),
            (Access::Write, PathClass::Disk) => f.add(
                "disk-write",
                Severity::Critical,
                span,
                format!("writes the raw device `{p}`: the file systems on it are destroyed"),
            ),
            (Access::Write | Access::Delete, PathClass::History) => f.add(
                "history-tampering",
                Severity::High,
                span,
                format!("overwrites or removes `{p}`, a history or log: this erases the record of what was done"),
            ),
            (Access::Delete, PathClass::Credentials | PathClass::Accounts | PathClass::Persistence | PathClass::Root | PathClass::Disk) => f.add(
                "destructive-delete",
                Severity::Critical,
                span,
                format!("deletes `{p}`, which the system needs to run or to let anyone log in"),
            ),
            (Access::Delete, PathClass::System) => f.add(
                "deletes-system-files",
                Severity::High,
                span,
                format!("deletes `{p}` under a system directory"),
            ),
            (Access::Write | Access::Modify, PathClass::System | PathClass::Root) => f.add(
                "writes-system-files",
                Severity::High,
                span,
                format!("writes or changes `{p}` under a system directory"),
            ),
            (Access::Modify, PathClass::History | PathClass::Disk) => f.add(
                "writes-system-files",
                Severity::High,
                span,
                format!("changes the permissions of `{p}`"),
            ),
        }
    }
    mentioned_paths(f, c);
}

/// Programs that only read or list what they are given.
const READERS: &[&str] = &[
    "cat",
    "less",
    "more",
    "head",
    "tail",
    "grep",
    "egrep",
    "fgrep",
    "rg",
    "ls",
    "stat",
    "file",
    "wc",
    "diff",
    "cmp",
    "md5sum",
    "sha256sum",
    "sha1sum",
    "sha512sum",
    "strings",
    "od",
    "xxd",
    "hexdump",
    "nl",
    "sort",
    "uniq",
    "cut",
    "view",
    "find",
    "du",
    "tree",
    "test",
    "[",
    "readlink",
    "realpath",
    "basename",
    "dirname",
    "echo",
    "printf",
    "namei",
    "getfacl",
    "lsattr",
];

/// Programs that look at names or metadata, not contents.
const LISTERS: &[&str] = &[
    "cd", "ls", "du", "df", "stat", "file", "test", "[", "find", "tree", "which", "type",
    "basename", "dirname", "realpath", "readlink", "mount", "umount", "namei", "lsattr", "getfacl",
];

/// Paths named inside arguments (`@/etc/shadow`, `file:///etc/shadow`, `'Include /etc/x'`,
/// `--opt=/x`) and in the values of the command's environment.
fn mentioned_paths(f: &mut Findings, c: &Cmd) {
    let name = c.name.as_str();
    let texts = c
        .args
        .iter()
        .map(|a| (a.text.as_str(), a.span))
        .chain(c.assignments.iter().map(|(_, v)| (v.as_str(), c.span)))
        .chain(std::iter::once((c.program.as_str(), c.span)));
    // `echo /etc/shadow | cpio -o`: names fed to the next program.
    let feeds_names = matches!(name, "echo" | "printf") && c.stages > 1 && c.stage + 1 < c.stages;
    for (text, span) in texts {
        if classify(text).is_some() && !feeds_names {
            // The whole word is a path: judged by how the command uses it.
            continue;
        }
        let name = if feeds_names {
            "the next program"
        } else {
            name
        };
        for (_, p) in paths_in(text) {
            let Some(class) = classify(p) else { continue };
            match class {
                PathClass::Credentials if LISTERS.contains(&name) && !feeds_names => {}
                PathClass::Credentials => f.add(
                    "reads-credentials",
                    Severity::Critical,
                    span,
                    format!("`{name}` is pointed at `{p}`, which holds secrets"),
                ),
                PathClass::Accounts => f.add(
                    "reads-accounts",
                    Severity::Medium,
                    span,
                    format!("`{name}` is pointed at `{p}`, the list of accounts"),
                ),
                PathClass::Persistence if !READERS.contains(&name) => f.add(
                    "writes-persistence",
                    Severity::High,
                    span,
                    format!("`{name}` is pointed at `{p}`, which runs code at login, boot or on a schedule"),
                ),
                PathClass::Disk if !LISTERS.contains(&name) => f.add(
                    "reads-disk",
                    Severity::Medium,
                    span,
                    format!("`{name}` is pointed at the raw device `{p}`"),
                ),
                _ => {}
            }
        }
    }
}

fn is_root_target(t: &str) -> bool {
    matches!(
        super::paths::normalize(t).as_str(),
        "/" | "/*" | "~" | "~/*" | "*" | ".*" | "/.*" | ".." | "../*"
    ) || classify(t) == Some(PathClass::Root)
}

fn destructive(f: &mut Findings, c: &Cmd) {
    let name = c.name.as_str();
    match name {
        "rm" => {
            let recursive = c.has_flag(&["-r", "-R", "--recursive"]);
            if c.words().any(|w| w == "--no-preserve-root") {
                f.add(
                    "destructive-delete",
                    Severity::Critical,
                    c.span,
                    "`rm --no-preserve-root` removes the whole file system".into(),
                );
            }
            for a in c.operands() {
                if recursive && is_root_target(&a.text) {
                    f.add(
                        "destructive-delete",
                        Severity::Critical,
                        a.span,
                        format!("`rm -r {}` deletes a whole tree the system or the user cannot do without", a.text),
                    );
                }
            }
        }
        "find" => {
            let starts: Vec<&Arg> = c
                .args
                .iter()
                .take_while(|a| !a.text.starts_with('-'))
                .collect();
            let deletes = c.words().any(|w| w == "-delete")
                || find_exec_commands(&c.args).iter().any(|(at, argv)| {
                    matches!(c.args[*at].text.as_str(), "-exec" | "-execdir")
                        && matches!(base_name(&argv[0].text), "rm" | "shred" | "unlink")
                });
            if deletes {
                for s in starts {
                    if is_root_target(&s.text) || classify(&s.text).is_some() {
                        f.add(
                            "destructive-delete",
                            Severity::Critical,
                            s.span,
                            format!(
                                "`find {} … -delete` removes files across a system tree",
                                s.text
                            ),
                        );
                    }
                }
            }
        }
        n if (n.starts_with("mkfs")
            || matches!(
                n,
                "wipefs"
                    | "blkdiscard"
                    | "sgdisk"
                    | "fdisk"
                    | "sfdisk"
                    | "parted"
                    | "cfdisk"
                    | "gdisk"
                    | "mkswap"
                    | "cryptsetup"
            ))
            && c.words().any(|w| classify(w) == Some(PathClass::Disk))
            && !(matches!(n, "fdisk" | "sfdisk" | "parted") && c.has_flag(&["-l", "--list"])) =>
        {
            f.add(
                "disk-write",
                Severity::Critical,
                c.span,
                format!("`{n}` rewrites a disk or partition: what is on it is lost"),
            );
        }
        "dd" if c.words().any(|w| {
            w.strip_prefix("of=")
                .is_some_and(|t| classify(t) == Some(PathClass::Disk))
        }) =>
        {
            f.add(
                "disk-write",
                Severity::Critical,
                c.span,
                "`dd of=` a disk device overwrites it".into(),
            );
        }
        "shred" | "wipe" | "srm" => {
            for a in c.operands() {
                if classify(&a.text).is_some() {
                    f.add(
                        "destructive-delete",
                        Severity::Critical,
                        a.span,
                        format!("`{name}` destroys `{}` beyond recovery", a.text),
                    );
                }
            }
        }
        "chmod" | "chown" | "chgrp"
            if c.has_flag(&["-R", "--recursive"])
                && c.operands().iter().skip(1).any(|a| is_root_target(&a.text)) =>
        {
            f.add(
                "permission-change",
                Severity::Critical,
                c.span,
                format!("`{name} -R` on a whole system tree breaks the system's permissions"),
            );
        }
        "mv" if c.operands().last().is_some_and(|a| a.text == "/dev/null") => {
            f.add(
                "destructive-delete",
                Severity::High,
                c.span,
                "moving files to /dev/null destroys them".into(),
            );
        }
        "crontab" if c.has_flag(&["-r"]) => f.add(
            "destructive-delete",
            Severity::High,
            c.span,
            "`crontab -r` removes every scheduled job without asking".into(),
        ),
        "kill" | "pkill" | "killall" | "killall5" => {
            let words: Vec<&str> = c.words().collect();
            if words.contains(&"-1")
                && name == "kill"
                && words.iter().filter(|w| !w.starts_with('-')).count() == 0
                || words.iter().any(|w| matches!(*w, "1" | "-1"))
                    && name == "kill"
                    && words.len() >= 2
                    && words.last() == Some(&"-1")
                || name == "killall5"
                || words.iter().any(|w| {
                    matches!(
                        *w,
                        "init"
                            | "systemd"
                            | "sshd"
                            | "auditd"
                            | "rsyslogd"
                            | "syslogd"
                            | "journald"
                            | "systemd-journald"
                            | "dockerd"
                            | "containerd"
                    )
                })
            {
                f.add(
                    "kills-processes",
                    Severity::High,
                    c.span,
                    format!("`{name}` stops every process or a service the system depends on"),
                );
            } else {
                f.add(
                    "kills-processes",
                    Severity::Low,
                    c.span,
                    format!("`{name}` stops processes"),
                );
            }
        }
        "shutdown" | "reboot" | "halt" | "poweroff" => f.add(
            "power",
            Severity::Medium,
            c.span,
            format!("`{name}` stops the machine for everyone on it"),
        ),
        "init" | "telinit" if c.words().any(|w| w == "0" || w == "6") => f.add(
            "power",
            Severity::Medium,
            c.span,
            "`init 0/6` stops the machine".into(),
        ),
        _ => {}
    }
    // Redirecting into a disk.
    for r in &c.redirs {
        if matches!(r.kind, RedirKind::Write | RedirKind::Append)
            && classify(&r.target) == Some(PathClass::Disk)
        {
            f.add(
                "disk-write",
                Severity::Critical,
                r.span,
                format!("writes straight to the disk `{}`", r.target),
            );
        }
    }
}

/// Whether a shell runs interactively: no script and no `-c`.
fn interactive_shell(c: &Cmd) -> bool {
    if !is_shell(&c.name) {
        return false;
    }
    // A shell reading a pipe or a file runs that as a script, unless told `-i`.
    let forced = c.args.iter().any(|a| {
        a.text == "-i"
            || (a.text.starts_with('-') && !a.text.starts_with("--") && a.text.contains('i'))
    });
    if !forced
        && (c.stage > 0
            || c.redirs
                .iter()
                .any(|r| matches!(r.kind, RedirKind::Read | RedirKind::Here)))
    {
        return false;
    }
    if c.name == "busybox" {
        return c.args.first().is_some_and(|a| is_shell(&a.text)) && c.args.len() <= 2;
    }
    let mut words = c.words().filter(|w| !w.is_empty());
    loop {
        match words.next() {
            None => return true,
            Some(w) if w.starts_with('-') || w.starts_with('+') => {
                if w == "-c"
                    || (w.starts_with('-')
                        && !w.starts_with("--")
                        && w.ends_with('c')
                        && w.len() <= 4)
                {
                    return false;
                }
            }
            // `sh script.sh`, `sh 0<&2` are operands.
            Some(_) => return false,
        }
    }
}

/// A shell name or path as a whole word inside program text (`system("/bin/sh")`, `!sh`,
/// `-exec sh`, `:!bash`).
fn mentions_shell(text: &str) -> Option<usize> {
    for (at, p) in paths_in(text) {
        if is_shell(base_name(p))
            && (p.starts_with("/bin/")
                || p.starts_with("/usr/bin/")
                || p.starts_with("/usr/local/bin/")
                || p.starts_with("/system/bin/"))
        {
            return Some(at);
        }
    }
    // `../../bin/sh`
    for w in text.split_whitespace() {
        let w = w.trim_matches(|ch: char| ch == '"' || ch == '\'' || ch == ')' || ch == '(');
        if w.contains("bin/") && is_shell(base_name(w)) {
            return text.find(w);
        }
    }
    // `sh` or `bash` as a word right after what runs it.
    let lower = text.to_ascii_lowercase();
    for prefix in [
        "!",
        "system(\"",
        "system('",
        "exec \"",
        "exec '",
        "exec(\"",
        "exec('",
        "spawn(\"",
        "spawn('",
        "spawn ",
        "exec=",
        "popen(\"",
        "popen('",
        "call(\"",
        "call(['",
        "call([\"",
        "run(['",
        "run([\"",
        ";",
        "'",
        "\"",
    ] {
        for shell in ["sh", "bash", "dash", "zsh", "ksh", "ash"] {
            let needle = format!("{prefix}{shell}");
            let mut from = 0;
            while let Some(i) = lower[from..].find(&needle) {
                let at = from + i;
                let end = at + needle.len();
                let next = lower[end..].chars().next();
                if next.is_none_or(|c| {
                    !c.is_ascii_alphanumeric() && c != '_' && c != '.' && c != '-' || c == ' '
                }) {
                    let before_ok = prefix.len() > 1
                        || at == 0
                        || !lower[..at].ends_with(|c: char| c.is_ascii_alphanumeric());
                    if before_ok {
                        return Some(at);
                    }
                }
                from = end;
            }
        }
    }
    None
}

fn shells(f: &mut Findings, script: &Script, i: usize, c: &Cmd) {
    // A shell spawned through a wrapper, from another program, or typed into a program.
    if interactive_shell(c) {
        let through = c.wrappers.iter().find(|w| {
            !matches!(
                w.as_str(),
                "sudo" | "doas" | "command" | "builtin" | "exec" | "time"
            )
        });
        if let Some(w) = through {
            f.add("spawns-shell", Severity::Critical, c.span, format!("`{w}` starts an interactive shell: a way out of whatever restricts the caller (GTFOBins)"));
        } else if c.origin != Origin::Top || c.stages > 1 {
            f.add("spawns-shell", Severity::Critical, c.span, "starts an interactive shell from inside another program or string: a way out of whatever restricts the caller (GTFOBins)".into());
        } else if c.wrappers.iter().any(|w| w == "sudo" || w == "doas") {
            f.add(
                "root-shell",
                Severity::Medium,
                c.span,
                "opens a root shell: every later command runs with full privileges".into(),
            );
        } else if c.args.iter().any(|a| a.text == "-p")
            || c.redirs.iter().any(|r| r.kind == RedirKind::Dup)
        {
            f.add(
                "spawns-shell",
                Severity::High,
                c.span,
                "starts a shell that keeps elevated privileges or is rewired to other descriptors"
                    .into(),
            );
        } else {
            f.add(
                "spawns-shell",
                Severity::High,
                c.span,
                format!(
                    "starts an interactive `{}`: what is typed into it next is not checked",
                    c.name
                ),
            );
        }
        let _ = (i, script.lines);
    }
    // A shell typed into the program opened on the line before (`sh X` in pic).
    if c.origin == Origin::Escape && is_shell(&c.name) && !interactive_shell(c) {
        f.add(
            "spawns-shell",
            Severity::Critical,
            c.span,
            "runs a shell from inside the program opened on the line before".into(),
        );
    }
    // Programs that start a shell when given no command.
    let no_command = c.operands().len() <= usize::from(matches!(c.name.as_str(), "chroot" | "sg"));
    if c.name == "script" && !c.words().any(|w| w == "-c" || w.starts_with("--command")) {
        f.add(
            "spawns-shell",
            Severity::High,
            c.span,
            "`script` without `-c` starts an interactive shell".into(),
        );
    }
    // An interpreter with no program: what is typed into it next is not checked.
    if INTERPRETERS.contains(&c.name.as_str())
        && !is_shell(&c.name)
        && c.args.is_empty()
        && c.redirs.is_empty()
        && c.stage == 0
    {
        f.add(
            "interactive-interpreter",
            Severity::Medium,
            c.span,
            format!(
                "opens an interactive `{}`: what is typed into it next is not checked",
                c.name
            ),
        );
    }
    if no_command
        && matches!(
            c.name.as_str(),
            "chroot"
                | "sg"
                | "newgrp"
                | "capsh"
                | "script"
                | "unshare"
                | "nsenter"
                | "machinectl"
                | "runuser"
                | "setpriv"
        )
    {
        f.add(
            "spawns-shell",
            Severity::High,
            c.span,
            format!("`{}` without a command starts a shell", c.name),
        );
    }
    if matches!(
        c.name.as_str(),
        "screen" | "tmux" | "byobu" | "dtach" | "abduco"
    ) && !c.words().any(|w| {
        matches!(
            w,
            "ls" | "-ls"
                | "list-sessions"
                | "-list"
                | "-r"
                | "attach"
                | "a"
                | "-x"
                | "kill-server"
                | "kill-session"
        )
    }) {
        f.add(
            "spawns-shell",
            Severity::Medium,
            c.span,
            format!(
                "`{}` starts a shell session whose input is not checked",
                c.name
            ),
        );
    }
    if c.name == "socat"
        && c.words().any(|w| {
            let l = w.to_ascii_lowercase();
            (l.starts_with("exec:") || l.starts_with("system:")) && mentions_shell(w).is_some()
        })
    {
        f.add(
            "spawns-shell",
            Severity::Critical,
            c.span,
            "`socat … EXEC:/bin/sh` starts a shell on whatever socat is connected to".into(),
        );
    }
    // Program text fed on standard input (`echo 'esyscmd(/bin/sh)' | m4`).
    if matches!(c.name.as_str(), "echo" | "printf")
        && c.stages > 1
        && c.stage + 1 < c.stages + 1
        && let Some(a) = c.args.iter().find(|a| mentions_shell(&a.text).is_some())
    {
        f.add(
            "spawns-shell",
            Severity::Critical,
            a.span,
            "pipes program text that runs a shell into the next program".into(),
        );
    }
    // The environment of a command can name a program for it to run.
    for (k, v) in &c.assignments {
        if mentions_shell(v).is_some()
            || (v.contains("/bin/")
                && is_shell(base_name(v.split_whitespace().next().unwrap_or(""))))
        {
            f.add(
                "spawns-shell",
                Severity::Critical,
                c.span,
                format!("`{k}` makes `{}` run a shell", c.name),
            );
        } else if (k.ends_with("_COMMAND")
            || k.ends_with("_CMD")
            || k.ends_with("OPEN")
            || k == "PERL5DB"
            || k == "PERL5OPT")
            && !v.is_empty()
            && !c.name.is_empty()
        {
            f.add(
                "indirect-exec",
                Severity::High,
                c.span,
                format!("`{k}` makes `{}` run a command", c.name),
            );
        }
    }
    // `sudo -i`, `sudo -s`, `su` without a command.
    if (c.name == "sudo" || c.name == "doas")
        && c.args
            .iter()
            .any(|a| matches!(a.text.as_str(), "-i" | "-s" | "--login" | "--shell"))
        || c.name == "su"
            && !c
                .args
                .iter()
                .any(|a| a.text == "-c" || a.text == "--command")
    {
        f.add(
            "root-shell",
            Severity::Medium,
            c.span,
            "opens a shell as another user (root by default)".into(),
        );
    }
    // A shell named inside another program's arguments.
    if !is_shell(&c.name) || c.origin != Origin::Top {
        for a in &c.args {
            if let Some(at) = mentions_shell(&a.text) {
                let bare_operand = is_shell(base_name(&a.text)) && !a.text.contains(' ');
                // `chsh -s /bin/zsh`, `ls /bin/bash`, `which bash`, `file /bin/sh`: naming a
                // shell is not running one.
                let names_only = matches!(
                    c.name.as_str(),
                    "chsh"
                        | "ls"
                        | "which"
                        | "whereis"
                        | "type"
                        | "file"
                        | "stat"
                        | "command"
                        | "echo"
                        | "printf"
                        | "readlink"
                        | "realpath"
                        | "ldd"
                        | "md5sum"
                        | "sha256sum"
                        | "sha1sum"
                        | "apt"
                        | "apt-get"
                        | "dnf"
                        | "yum"
                        | "pacman"
                        | "brew"
                        | "man"
                        | "info"
                        | "dpkg"
                        | "rpm"
                        | "grep"
                        | "useradd"
                        | "usermod"
                );
                if names_only && (bare_operand || matches!(c.name.as_str(), "grep" | "info")) {
                    continue;
                }
                if c.name == "echo" || c.name == "printf" {
                    // Written into a file that something runs later: judged by temp_scripts.
                    continue;
                }
                let span = (a.span.0 + at.min(a.span.1 - a.span.0), a.span.1);
                f.add("spawns-shell", Severity::Critical, span, format!("`{}` is made to run a shell (`{}`): a way out of whatever restricts it (GTFOBins)", c.name, a.text.chars().take(60).collect::<String>()));
                break;
            }
        }
    }
    // A line typed into the program opened before it.
    if c.origin == Origin::Escape && !is_shell(&c.name) && !c.name.is_empty() {
        let typed_exec =
            c.program.starts_with('!') || c.args.iter().any(|a| a.text.starts_with('!'));
        if typed_exec {
            f.add("spawns-shell", Severity::Critical, c.span, "a `!command` typed into the program opened on the line before runs a command outside it".into());
        }
    }
}

fn is_downloader(c: &Cmd) -> bool {
    DOWNLOADERS.contains(&c.name.as_str())
        || (c.name == "nc" || c.name == "ncat")
        || (c.name == "openssl" && c.words().any(|w| w == "s_client"))
}

fn is_runner(c: &Cmd) -> bool {
    is_shell(&c.name)
        && !c
            .args
            .iter()
            .any(|a| a.text.ends_with(".sh") && !a.text.starts_with('-'))
        || (INTERPRETERS.contains(&c.name.as_str())
            && c.operands().is_empty()
            && !c.words().any(|w| matches!(w, "-c" | "-e" | "-r")))
        || matches!(c.name.as_str(), "eval" | "source" | "." | "exec")
}

fn network(f: &mut Findings, script: &Script, i: usize, c: &Cmd) {
    let name = c.name.as_str();
    let words: Vec<&str> = c.words().collect();
    let lower_all: String = words.join(" ").to_ascii_lowercase();
    // /dev/tcp and /dev/udp: bash's own sockets.
    let dev_tcp = c
        .redirs
        .iter()
        .any(|r| r.target.contains("/dev/tcp/") || r.target.contains("/dev/udp/"))
        || words
            .iter()
            .any(|w| w.contains("/dev/tcp/") || w.contains("/dev/udp/"));
    let shell_here = is_shell(name)
        || script.commands.iter().any(|o| {
            o.pipeline == c.pipeline
                && (is_shell(&o.name) || INTERPRETERS.contains(&o.name.as_str()))
        });
    if dev_tcp {
        if shell_here
            || c.redirs.iter().filter(|r| r.kind == RedirKind::Dup).count() > 0
            || name == "exec"
        {
            f.add("reverse-shell", Severity::Critical, c.span, "a shell wired to a TCP connection through /dev/tcp: whoever is at the other end controls this machine".into());
        } else {
            f.add(
                "network-send",
                Severity::High,
                c.span,
                "opens a raw connection through /dev/tcp".into(),
            );
        }
    }
    match name {
        "nc" | "ncat" | "netcat" | "cryptcat" => {
            let exec = c.has_flag(&["-e", "-c"])
                || words
                    .iter()
                    .any(|w| matches!(*w, "--exec" | "--sh-exec" | "--lua-exec"));
            let listen = c.has_flag(&["-l", "--listen"]);
            if exec && listen {
                f.add(
                    "bind-shell",
                    Severity::Critical,
                    c.span,
                    format!("`{name} -l -e` serves a shell to anyone who connects"),
                );
            } else if exec {
                f.add(
                    "reverse-shell",
                    Severity::Critical,
                    c.span,
                    format!("`{name} -e` hands a program's input and output to a remote host"),
                );
            } else if listen {
                f.add(
                    "network-listener",
                    Severity::Medium,
                    c.span,
                    format!("`{name} -l` accepts connections from the network"),
                );
            }
        }
        "socat" => {
            let exec = lower_all.contains("exec:") || lower_all.contains("system:");
            let listen = lower_all.contains("-listen:");
            if exec && listen {
                f.add(
                    "bind-shell",
                    Severity::Critical,
                    c.span,
                    "`socat …-LISTEN … EXEC:` serves a program to anyone who connects".into(),
                );
            } else if exec
                && (lower_all.contains("tcp")
                    || lower_all.contains("udp")
                    || lower_all.contains("ssl")
                    || lower_all.contains("openssl"))
            {
                f.add(
                    "reverse-shell",
                    Severity::Critical,
                    c.span,
                    "`socat TCP:… EXEC:` hands a program to a remote host".into(),
                );
            } else if listen {
                f.add(
                    "network-listener",
                    Severity::Medium,
                    c.span,
                    "`socat …-LISTEN` accepts connections from the network".into(),
                );
            }
        }
        "socket"
            if c.has_flag(&["-p", "-q", "-v", "-s"]) && words.iter().any(|w| w.contains("sh")) =>
        {
            f.add(
                if c.has_flag(&["-s"]) {
                    "bind-shell"
                } else {
                    "reverse-shell"
                },
                Severity::Critical,
                c.span,
                "`socket -p` runs a shell over a network connection".into(),
            );
        }
        "mkfifo" | "mknod" => {
            let net = script
                .commands
                .iter()
                .any(|o| NETWORK.contains(&o.name.as_str()));
            let sh = script.commands.iter().any(|o| is_shell(&o.name));
            if net && sh {
                f.add(
                    "reverse-shell",
                    Severity::Critical,
                    c.span,
                    "a named pipe joining a shell to a network connection".into(),
                );
            }
        }
        "ssh" => {
            if words.iter().any(|w| {
                w.to_ascii_lowercase().contains("proxycommand")
                    || w.to_ascii_lowercase().contains("localcommand")
            }) {
                f.add(
                    "indirect-exec",
                    Severity::High,
                    c.span,
                    "`ssh -o ProxyCommand/LocalCommand` runs a local command".into(),
                );
            }
            if c.has_flag(&["-R"])
                && words
                    .iter()
                    .any(|w| w.contains(":22") || w.starts_with("0.0.0.0"))
            {
                f.add(
                    "network-listener",
                    Severity::Medium,
                    c.span,
                    "`ssh -R` opens this machine to the remote side".into(),
                );
            }
        }
        _ => {}
    }
    // A shell between two network programs in one pipeline (`telnet … | sh | telnet …`).
    if is_shell(name) && c.stages > 1 && c.stage > 0 {
        let net_before = script.commands.iter().any(|o| {
            o.pipeline == c.pipeline && o.stage < c.stage && NETWORK.contains(&o.name.as_str())
        });
        let net_after = script.commands.iter().any(|o| {
            o.pipeline == c.pipeline && o.stage > c.stage && NETWORK.contains(&o.name.as_str())
        });
        if net_before && net_after {
            f.add(
                "reverse-shell",
                Severity::Critical,
                c.span,
                "a shell reading from and writing to network connections".into(),
            );
        }
    }
    // Interactive shell whose output goes into a network program (`sh -i 2>&1 | nc …`).
    if interactive_shell(c)
        && c.stages > 1
        && script.commands.iter().any(|o| {
            o.pipeline == c.pipeline && o.stage != c.stage && NETWORK.contains(&o.name.as_str())
        })
    {
        f.add(
            "reverse-shell",
            Severity::Critical,
            c.span,
            "an interactive shell piped to a network program".into(),
        );
    }
    // Sending local data out.
    let sends_file = match name {
        "curl" => words.iter().enumerate().any(|(k, w)| {
            (matches!(
                *w,
                "-d" | "--data"
                    | "--data-binary"
                    | "--data-raw"
                    | "--data-urlencode"
                    | "-F"
                    | "--form"
                    | "-T"
                    | "--upload-file"
            ) && words
                .get(k + 1)
                .is_some_and(|v| v.contains('@') || matches!(*w, "-T" | "--upload-file")))
                || w.starts_with("--data-binary=@")
                || w.starts_with("-d@")
        }),
        "wget" => words
            .iter()
            .any(|w| w.starts_with("--post-file") || w.starts_with("--body-file")),
        "ab" => c.has_flag(&["-p", "-u"]),
        "scp" | "rsync" | "rcp" => words
            .iter()
            .rfind(|w| !w.starts_with('-'))
            .is_some_and(|w| w.contains(':') && !w.starts_with('/')),
        "nc" | "ncat" | "netcat" | "socat" | "telnet" | "openssl" => {
            c.redirs.iter().any(|r| r.kind == RedirKind::Read) || c.stage > 0
        }
        "smbclient" | "tftp" | "sftp" | "ftp" | "lftp" => words.iter().any(|w| w.contains("put")),
        _ => false,
    };
    let posts = name == "curl"
        && (words.iter().any(|w| {
            matches!(
                *w,
                "-d" | "--data" | "--data-binary" | "--data-raw" | "-F" | "--form"
            )
        }) || words
            .windows(2)
            .any(|w| matches!(w[0], "-X" | "--request") && matches!(w[1], "POST" | "PUT")));
    let piped_in = c.stage > 0
        && NETWORK.contains(&name)
        && name != "ssh"
        && script.commands.iter().any(|o| {
            o.pipeline == c.pipeline
                && o.stage < c.stage
                && !o.operands().is_empty()
                && matches!(
                    o.name.as_str(),
                    "cat" | "tar" | "zip" | "base64" | "gzip" | "xxd" | "dd" | "find"
                )
        });
    if sends_file || piped_in {
        f.add(
            "uploads-file",
            Severity::High,
            c.span,
            format!("`{name}` sends a local file to another machine"),
        );
    } else if posts {
        f.add(
            "network-send",
            Severity::Medium,
            c.span,
            format!("`{name}` sends data to a server"),
        );
    }
    // Later lines of the same script that upload what an earlier one read are caught by the
    // read rules together with this one.
    let _ = i;
}

fn privilege(f: &mut Findings, c: &Cmd) {
    let name = c.name.as_str();
    match name {
        "chmod" => {
            let mode = c
                .operands()
                .first()
                .map(|a| a.text.clone())
                .unwrap_or_default();
            let setid = mode.contains('s') && (mode.contains('+') || mode.contains('='))
                || (mode.len() == 4
                    && mode.chars().all(|ch| ch.is_ascii_digit())
                    && matches!(mode.as_bytes()[0], b'2' | b'4' | b'6' | b'7'));
            if setid {
                f.add("privilege-change", Severity::High, c.span, format!("`chmod {mode}` sets the set-user/group-ID bit: the file runs with its owner's privileges"));
            } else if (mode == "777"
                || mode == "666"
                || mode == "a+rwx"
                || mode == "o+w"
                || mode == "a+w")
                && c.operands()
                    .iter()
                    .skip(1)
                    .any(|a| classify(&a.text).is_some())
            {
                f.add(
                    "privilege-change",
                    Severity::High,
                    c.span,
                    format!("`chmod {mode}` makes a system file writable by everyone"),
                );
            } else if mode == "777" || mode == "a+rwx" {
                f.add(
                    "permission-change",
                    Severity::Low,
                    c.span,
                    "mode 777 lets every user change and run the file".into(),
                );
            }
        }
        "chown" | "chgrp" => {
            if c.operands()
                .iter()
                .skip(1)
                .any(|a| classify(&a.text).is_some())
            {
                f.add(
                    "privilege-change",
                    Severity::High,
                    c.span,
                    format!("`{name}` gives a system file to another owner"),
                );
            } else if c.words().any(|w| w.contains("$(id") || w.contains("`id")) {
                f.add(
                    "privilege-change",
                    Severity::High,
                    c.span,
                    format!("`{name}` takes a file over for the current user"),
                );
            }
        }
        "setcap" => f.add(
            "privilege-change",
            Severity::High,
            c.span,
            "`setcap` grants a program capabilities of root".into(),
        ),
        "usermod" | "useradd" | "adduser" | "gpasswd" | "groupadd" | "addgroup" => {
            let root_like = c.words().any(|w| {
                matches!(
                    w,
                    "sudo" | "wheel" | "root" | "admin" | "docker" | "disk" | "shadow"
                ) || w.contains("sudo")
                    || w == "0"
            });
            if root_like || c.has_flag(&["-o"]) {
                f.add(
                    "privilege-change",
                    Severity::High,
                    c.span,
                    format!("`{name}` gives an account administrator rights"),
                );
            } else {
                f.add(
                    "account-change",
                    Severity::Medium,
                    c.span,
                    format!("`{name}` changes the accounts on this machine"),
                );
            }
        }
        "passwd" | "chpasswd" | "visudo" | "vipw" | "pwconv" => {
            f.add(
                "account-change",
                Severity::High,
                c.span,
                format!("`{name}` changes passwords or who may use sudo"),
            );
        }
        "mount" => {
            if c.words()
                .any(|w| w == "bind" || w == "--bind" || w.contains("bind"))
                && c.operands().iter().any(|a| {
                    classify(&a.text).is_some()
                        || a.text.starts_with("/bin")
                        || a.text.starts_with("/usr")
                })
            {
                f.add(
                    "privilege-change",
                    Severity::High,
                    c.span,
                    "`mount --bind` over a system file replaces it for every user".into(),
                );
            } else if c
                .operands()
                .iter()
                .any(|a| classify(&a.text) == Some(PathClass::Disk))
            {
                f.add(
                    "mounts-disk",
                    Severity::Medium,
                    c.span,
                    "mounts a disk: its files become reachable without their owner's permissions"
                        .into(),
                );
            }
        }
        "docker" | "podman" => {
            let w: Vec<&str> = c.words().collect();
            let privileged = w.iter().any(|x| {
                *x == "--privileged"
                    || x.starts_with("--pid=host")
                    || *x == "--pid"
                    || x.starts_with("--cap-add")
            });
            let host_root = w.windows(2).any(|p| {
                (p[0] == "-v" || p[0] == "--volume")
                    && (p[1].starts_with("/:")
                        || p[1].starts_with("/etc")
                        || p[1].starts_with("/root")
                        || p[1].starts_with("/var/run/docker.sock"))
            }) || w
                .iter()
                .any(|x| x.starts_with("--volume=/:") || x.starts_with("-v/:"));
            if privileged || host_root {
                f.add("container-escape", Severity::High, c.span, "a container with the host's root file system or full privileges is root on the host".into());
            }
        }
        "nsenter" if c.words().any(|w| w == "1" || w == "--target=1") => {
            f.add(
                "container-escape",
                Severity::High,
                c.span,
                "`nsenter -t 1` enters the host's namespaces".into(),
            );
        }
        // A shell put in place of another program: `ln -fs /bin/sh /bin/x`, `cp /bin/sh ./x`.
        "ln" | "cp" => {
            let ops = c.operands();
            if ops.len() >= 2 && is_shell(base_name(&ops[0].text)) && ops[0].text.starts_with('/') {
                let (rule, what) = if name == "ln" {
                    ("privilege-change", "links")
                } else {
                    ("spawns-shell", "copies")
                };
                f.add(
                    rule,
                    Severity::High,
                    c.span,
                    format!(
                        "{what} a shell under another program's name, to be run as that program"
                    ),
                );
            }
        }
        "setenforce"
            if c.words()
                .any(|w| w == "0" || w.eq_ignore_ascii_case("permissive")) =>
        {
            f.add(
                "security-off",
                Severity::High,
                c.span,
                "`setenforce 0` turns SELinux enforcement off".into(),
            )
        }
        "iptables" | "ip6tables" | "nft"
            if c.has_flag(&["-F", "--flush"])
                || c.words().any(|w| w == "flush")
                || c.words()
                    .collect::<Vec<_>>()
                    .windows(3)
                    .any(|w| w[0] == "-P" && w[2] == "ACCEPT") =>
        {
            f.add(
                "security-off",
                Severity::High,
                c.span,
                "removes the firewall's rules".into(),
            )
        }
        "ufw" if c.words().any(|w| w == "disable") => f.add(
            "security-off",
            Severity::High,
            c.span,
            "turns the firewall off".into(),
        ),
        "systemctl" | "service" => {
            let w: Vec<&str> = c.words().collect();
            let stopping = w
                .iter()
                .any(|x| matches!(*x, "stop" | "disable" | "mask" | "kill"));
            let guard = w.iter().any(|x| {
                [
                    "firewalld",
                    "ufw",
                    "auditd",
                    "apparmor",
                    "selinux",
                    "fail2ban",
                    "rsyslog",
                    "syslog",
                    "systemd-journald",
                    "clamav",
                    "falco",
                    "osqueryd",
                    "wazuh",
                ]
                .iter()
                .any(|g| x.starts_with(g))
            });
            if stopping && guard {
                f.add(
                    "security-off",
                    Severity::High,
                    c.span,
                    "stops a security or logging service".into(),
                );
            }
            if w.iter()
                .any(|x| matches!(*x, "reboot" | "poweroff" | "halt"))
            {
                f.add(
                    "power",
                    Severity::Medium,
                    c.span,
                    "stops the machine for everyone on it".into(),
                );
            }
        }
        "auditctl" if c.has_flag(&["-D", "-e"]) => f.add(
            "security-off",
            Severity::High,
            c.span,
            "changes or removes the audit rules".into(),
        ),
        "gcore" => f.add(
            "reads-credentials",
            Severity::High,
            c.span,
            "`gcore` dumps a process's memory, secrets included".into(),
        ),
        "gdb" if c.has_flag(&["-p", "--pid"]) => f.add(
            "reads-credentials",
            Severity::High,
            c.span,
            "`gdb -p` attaches to a running process and can read its secrets".into(),
        ),
        "ctr" | "nerdctl" | "lxc" | "systemd-nspawn"
            if c.words().any(|w| {
                w.contains("src=/,")
                    || w.ends_with("src=/")
                    || w.starts_with("/:")
                    || w == "--privileged"
                    || w == "--directory=/"
                    || w == "-D/"
            }) =>
        {
            f.add(
                "container-escape",
                Severity::High,
                c.span,
                "a container with the host's root file system is root on the host".into(),
            )
        }
        _ => {}
    }
    // Serving files or a shell to the network; tunnels into this machine.
    let words: Vec<&str> = c.words().collect();
    let serves = match name {
        "php" => c.has_flag(&["-S"]),
        "busybox" => words.first() == Some(&"httpd"),
        "ruby" => words.iter().any(|w| w.contains("httpd")),
        "python" | "python2" | "python3" => words.windows(2).any(|w| {
            w[0] == "-m"
                && (w[1] == "http.server"
                    || w[1] == "SimpleHTTPServer"
                    || w[1] == "pyftpdlib"
                    || w[1] == "smtpd")
        }),
        "kubectl" => {
            words.first() == Some(&"proxy")
                || words.first() == Some(&"port-forward")
                    && words.iter().any(|w| w.contains("0.0.0.0"))
        }
        "httpd" | "lighttpd" | "darkhttpd" | "webfsd" | "twistd" => true,
        _ => words.iter().any(|w| {
            w.contains("--address=0.0.0.0")
                || w.contains("--bind=0.0.0.0")
                || w.contains("--host=0.0.0.0")
                || *w == "0.0.0.0"
        }),
    };
    if serves {
        f.add(
            "network-listener",
            Severity::Medium,
            c.span,
            format!("`{name}` serves files or a service to the network"),
        );
    }
    let tunnel = (name == "code" && words.first() == Some(&"tunnel"))
        || matches!(
            name,
            "ngrok"
                | "cloudflared"
                | "chisel"
                | "frpc"
                | "bore"
                | "localtunnel"
                | "lt"
                | "pagekite"
                | "inlets"
        );
    if tunnel {
        f.add(
            "remote-access",
            Severity::Medium,
            c.span,
            format!("`{name}` opens this machine to others over a tunnel"),
        );
    }
    if words.iter().any(|w| {
        let l = w.to_ascii_lowercase();
        l.starts_with("gopher://") || l.starts_with("dict://") || l.starts_with("ldap://")
    }) {
        f.add("network-send", Severity::Medium, c.span, "a gopher/dict/ldap URL: raw bytes sent to a service, a known way to reach internal ones".into());
    }
    if name == "systemctl"
        && words.iter().any(|w| matches!(*w, "link" | "enable"))
        && words
            .iter()
            .any(|w| w.ends_with(".service") && (w.starts_with('/') || w.starts_with('.')))
    {
        f.add(
            "writes-persistence",
            Severity::High,
            c.span,
            "installs a service from a loose unit file: it runs at every boot".into(),
        );
    }
    {}
    // LD_PRELOAD and friends.
    for (k, v) in &c.assignments {
        if matches!(
            k.as_str(),
            "LD_PRELOAD" | "LD_AUDIT" | "DYLD_INSERT_LIBRARIES"
        ) && !v.is_empty()
        {
            f.add(
                "library-load",
                Severity::High,
                c.span,
                format!("`{k}` loads `{v}` into every program started with it"),
            );
        }
    }
    if name == "export"
        && c.words()
            .any(|w| w.starts_with("LD_PRELOAD=") || w.starts_with("LD_AUDIT="))
    {
        f.add(
            "library-load",
            Severity::High,
            c.span,
            "`export LD_PRELOAD` loads a library into every later program".into(),
        );
    }
}

fn history(f: &mut Findings, c: &Cmd) {
    let name = c.name.as_str();
    let words: Vec<&str> = c.words().collect();
    let hist_var = |k: &str, v: &str| {
        (k == "HISTFILE" && (v.is_empty() || v == "/dev/null"))
            || (matches!(k, "HISTSIZE" | "HISTFILESIZE") && v == "0")
    };
    let tamper = (name == "history" && c.has_flag(&["-c", "-d"]))
        || (name == "unset" && words.contains(&"HISTFILE"))
        || (name == "set" && words.windows(2).any(|w| w[0] == "+o" && w[1] == "history"))
        || (matches!(name, "export" | "declare" | "typeset" | "readonly")
            && words
                .iter()
                .any(|w| w.split_once('=').is_some_and(|(k, v)| hist_var(k, v))))
        || (name.is_empty() && c.assignments.iter().any(|(k, v)| hist_var(k, v)))
        || (name == "ln"
            && words.contains(&"/dev/null")
            && words
                .iter()
                .any(|w| classify(w) == Some(PathClass::History)));
    if tamper {
        f.add(
            "history-tampering",
            Severity::High,
            c.span,
            "turns shell history off or erases it: what was done can no longer be reviewed".into(),
        );
    }
    if matches!(name, "alias")
        && words.iter().any(|w| {
            w.split_once('=').is_some_and(|(k, v)| {
                matches!(
                    k,
                    "sudo" | "su" | "ls" | "cd" | "rm" | "cat" | "passwd" | "ssh"
                ) && (v.contains("rm ")
                    || v.contains("curl")
                    || v.contains("wget")
                    || v.contains("nc ")
                    || v.contains("/tmp")
                    || v.contains(";"))
            })
        })
    {
        f.add(
            "alias-hijack",
            Severity::High,
            c.span,
            "redefines a common command to do something else".into(),
        );
    }
}

fn misc(f: &mut Findings, c: &Cmd) {
    let name = c.name.as_str();
    let words: Vec<&str> = c.words().collect();
    // `find … -exec CMD \; -quit` with no `{}`: the files found are a pretext.
    if name == "find" {
        for (at, argv) in find_exec_commands(&c.args) {
            if !argv.iter().any(|a| a.text.contains("{}")) {
                f.add(
                    "indirect-exec",
                    Severity::High,
                    c.args[at].span,
                    format!(
                        "`find -exec {}` runs a command that does not act on the files found: \
                         find is only a way to run it",
                        argv[0].text
                    ),
                );
            }
        }
    }
    // `xargs -a /dev/null CMD`: no input at all, only a way to run CMD.
    if c.wrappers.iter().any(|w| w == "xargs")
        && c.wrapper_options
            .windows(2)
            .any(|w| (w[0] == "-a" || w[0] == "--arg-file") && w[1] == "/dev/null")
    {
        f.add(
            "indirect-exec",
            Severity::High,
            c.span,
            format!(
                "`xargs -a /dev/null {name}` reads no input: xargs is only a way to run `{name}`"
            ),
        );
    }
    // Background network requests in a loop: a flood.
    if c.in_loop && c.background && NETWORK.contains(&name) {
        f.add(
            "network-flood",
            Severity::Medium,
            c.span,
            format!(
                "starts `{name}` in the background on every turn of a loop: a flood of requests"
            ),
        );
    }
    // Capturing the screen or the keyboard.
    let captures = (name == "import"
        && words
            .windows(2)
            .any(|w| w[0] == "-window" && w[1] == "root"))
        || matches!(
            name,
            "scrot"
                | "xwd"
                | "gnome-screenshot"
                | "spectacle"
                | "maim"
                | "grim"
                | "logkeys"
                | "showkey"
                | "xdotool"
                | "xev"
        )
        || (name == "xinput" && words.first() == Some(&"test"))
        || (name == "ffmpeg"
            && words
                .iter()
                .any(|w| *w == "x11grab" || *w == "alsa" || *w == "pulse"))
        || (name == "arecord" || name == "parecord");
    if captures {
        f.add(
            "captures-input",
            Severity::Medium,
            c.span,
            format!("`{name}` records the screen, keyboard or microphone"),
        );
    }
    // Scheduling a command to run later, away from the terminal.
    match name {
        "at" | "batch"
            if c.stage > 0
                || c.redirs
                    .iter()
                    .any(|r| matches!(r.kind, RedirKind::Read | RedirKind::Here))
                || c.has_flag(&["-f"]) =>
        {
            f.add(
                "schedules-command",
                Severity::High,
                c.span,
                format!("`{name}` schedules a command to run later, out of sight"),
            );
        }
        "crontab"
            if !c.has_flag(&["-l", "-r", "-e"]) && (c.stage > 0 || !c.operands().is_empty()) =>
        {
            f.add(
                "schedules-command",
                Severity::High,
                c.span,
                "`crontab FILE` replaces the user's scheduled jobs".into(),
            );
        }
        "systemd-run" => f.add(
            "schedules-command",
            Severity::High,
            c.span,
            "`systemd-run` runs a command as a transient service".into(),
        ),
        _ => {}
    }
    // Running what a decoder produced.
    if is_runner(c) && c.stage > 0 {
        // decided in downloads_run, which sees the whole pipeline
    }
    // Package installs from a URL or a file.
    let installs = match name {
        "opkg" | "apk" | "pip" | "pip3" | "pipx" | "npm" | "yarn" | "pnpm" | "gem" | "cargo"
        | "go" | "apt" | "apt-get" | "yum" | "dnf" | "rpm" | "dpkg" | "zypper" | "snap"
        | "easy_install" => {
            words.iter().any(|w| {
                matches!(
                    *w,
                    "install" | "-i" | "-U" | "-Uvh" | "-ivh" | "add" | "localinstall"
                )
            }) && words.iter().any(|w| {
                w.starts_with("http://")
                    || w.starts_with("https://")
                    || w.starts_with("git+")
                    || w.starts_with("ftp://")
                    || w.ends_with(".deb")
                    || w.ends_with(".rpm")
                    || w.ends_with(".whl") && w.starts_with('/')
                    || w.starts_with("/tmp/")
            })
        }
        _ => false,
    };
    if installs {
        f.add("untrusted-install", Severity::High, c.span, format!("`{name}` installs a package from a URL or a loose file: its install scripts run with your rights"));
    }
    if name == "dpkg" && c.has_flag(&["-i"]) && !installs {
        f.add(
            "untrusted-install",
            Severity::Medium,
            c.span,
            "`dpkg -i` installs a package file and runs its maintainer scripts".into(),
        );
    }
    // A computed command name.
    if c.program.starts_with('$')
        || c.program.contains("${") && c.program.contains('}') && !c.program.contains('/')
    {
        f.add(
            "obfuscated",
            Severity::Medium,
            c.span,
            "the program to run is computed at run time, so it cannot be reviewed".into(),
        );
    }
    if words
        .iter()
        .any(|w| w.contains("${IFS}") || w.contains("$IFS"))
        || c.program.contains("IFS")
    {
        f.add(
            "obfuscated",
            Severity::High,
            c.span,
            "`$IFS` used as a separator: a way to hide spaces from filters".into(),
        );
    }
}

/// Program text given on the command line or in a here-document: what it calls.
fn code(f: &mut Findings, c: &Cmd) {
    let name = c.name.as_str();
    let interpreter = INTERPRETERS.contains(&name)
        || is_shell(name)
        || matches!(
            name,
            "vim"
                | "vi"
                | "nvim"
                | "ex"
                | "ed"
                | "emacs"
                | "nmap"
                | "bpftrace"
                | "sqlite3"
                | "mysql"
                | "psql"
                | "make"
                | "rpm"
                | "zip"
                | "tar"
                | "git"
                | "ansible"
                | "ansible-playbook"
                | "gimp"
                | "jshell"
                | "php"
                | "tclsh"
                | "cpan"
                | "pdb"
                | "ghci"
                | "ghc"
                | "sed"
                | "find"
                | "xargs"
        );
    let mut texts: Vec<(&str, Span)> = Vec::new();
    for a in &c.args {
        if a.text.len() > 3
            && (a.text.contains('(')
                || a.text.contains(' ')
                || a.text.contains(';')
                || a.text.contains('!')
                || a.text.contains('=')
                || a.text.contains(':'))
        {
            texts.push((a.text.as_str(), a.span));
        }
    }
    for r in &c.redirs {
        if r.kind == RedirKind::Here {
            texts.push((r.target.as_str(), r.span));
        }
    }
    if !c.program.is_empty() && c.origin == Origin::Escape {
        texts.push((c.program.as_str(), c.span));
    }
    for (text, span) in texts {
        let lower = text.to_ascii_lowercase();
        let exec = EXEC_CALLS.iter().find(|k| lower.contains(*k));
        let socket = SOCKET_CALLS.iter().find(|k| lower.contains(*k));
        let listen = LISTEN_CALLS.iter().any(|k| lower.contains(k));
        let shell = mentions_shell(text).is_some()
            || lower.contains("pty.spawn")
            || lower.contains("dup2")
            || lower.contains("spawn(\"/bin")
            || lower.contains("child_process");
        if socket.is_some()
            && (shell
                || lower.contains("dup2")
                || lower.contains("|& getline")
                || lower.contains("popen")
                || lower.contains("exec"))
            && (interpreter
                || name == "echo"
                || name == "printf"
                || name == "cat"
                || c.origin == Origin::Escape)
        {
            if listen {
                f.add(
                    "bind-shell",
                    Severity::Critical,
                    span,
                    "program text that listens on a port and runs what it receives".into(),
                );
            } else {
                f.add("reverse-shell", Severity::Critical, span, "program text that connects out and hands a shell or commands to the other side".into());
            }
            continue;
        }
        if let Some(k) = exec
            && (interpreter || c.origin == Origin::Escape)
            && !(name == "find" || name == "xargs")
        {
            // `awk '{print $1}'` has no exec call; `awk 'BEGIN {system("id")}'` has.
            let sev = if shell {
                Severity::Critical
            } else {
                Severity::High
            };
            f.add(
                if shell {
                    "spawns-shell"
                } else {
                    "indirect-exec"
                },
                sev,
                span,
                format!("`{name}` is given program text that runs other commands (`{k}`)"),
            );
        }
        if let Some(k) = socket
            && interpreter
            && !matches!(name, "sh" | "bash" | "zsh" | "dash")
        {
            // Reading a file and sending it, or fetching to a file, inside a program.
            let reads_file = lower.contains("open(")
                || lower.contains("readfile")
                || lower.contains("read(")
                || lower.contains("io.open")
                || lower.contains("file.read")
                || lower.contains("createreadstream")
                || lower.contains("get_contents")
                || paths_in(text).any(|(_, p)| classify(p).is_some());
            let sev = if reads_file {
                Severity::High
            } else {
                Severity::Medium
            };
            f.add(
                "network-in-code",
                sev,
                span,
                format!("`{name}` is given program text that opens network connections (`{k}`)"),
            );
        }
        if let Some(k) = LIBRARY_CALLS.iter().find(|k| lower.contains(*k)) {
            f.add(
                "library-load",
                Severity::High,
                span,
                format!("loads a shared library into a running program (`{k}`)"),
            );
        }
        // Paths inside program text.
        if interpreter || name == "echo" || name == "printf" {
            for (_, p) in paths_in(text) {
                match classify(p) {
                    Some(PathClass::Credentials) => f.add(
                        "reads-credentials",
                        Severity::Critical,
                        span,
                        format!("program text opens `{p}`, which holds secrets"),
                    ),
                    Some(PathClass::Persistence) if name != "echo" && name != "printf" => f.add(
                        "writes-persistence",
                        Severity::High,
                        span,
                        format!("program text touches `{p}`, which runs code later"),
                    ),
                    Some(PathClass::Accounts) => f.add(
                        "reads-accounts",
                        Severity::Medium,
                        span,
                        format!("program text opens `{p}`"),
                    ),
                    Some(PathClass::Disk) => f.add(
                        "disk-write",
                        Severity::High,
                        span,
                        format!("program text opens the raw device `{p}`"),
                    ),
                    _ => {}
                }
            }
        }
    }
    // Options that run a command: hooks of otherwise ordinary programs.
    let words: Vec<&str> = c.words().collect();
    let lowered: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let hook = lowered.iter().enumerate().find_map(|(k, w)| {
        let next = lowered.get(k + 1).map(String::as_str).unwrap_or("");
        let hit = w.starts_with("--to-command")
            || w.starts_with("--checkpoint-action=exec")
            || w.starts_with("--use-compress-program")
                && !w.ends_with("=gzip")
                && !w.ends_with("=xz")
                && !w.ends_with("=zstd")
            || (w == "-i"
                && name == "tar"
                && !next.is_empty()
                && !matches!(next, "gzip" | "xz" | "zstd" | "bzip2"))
            || w.starts_with("--rsh-command")
            || w.starts_with("--rsh=")
            || (w == "-e" && name == "rsync" && next.contains("sh"))
            || (w == "-tt" && name == "zip")
            || w.starts_with("--unzip-command")
            || (w == "-z" && name == "tcpdump")
            || w.starts_with("--postrotate")
            || w.starts_with("--up") && name == "openvpn"
            || w.starts_with("--script-security")
            || w.contains("proxycommand")
            || w.contains("localcommand")
            || w.contains("permitlocalcommand")
            || w.contains("core.pager")
            || w.contains("core.sshcommand")
            || w.contains("core.fsmonitor")
            || w.contains("core.editor")
            || w.contains("core.hookspath")
            || w.starts_with("--use-askpass")
            || w.starts_with("--eval") && name == "make"
            || w.starts_with("--batch-interpreter")
            || (w == "-ex" || w == "--eval-command")
                && (next.starts_with('!')
                    || next.starts_with("shell")
                    || next.starts_with("python")
                    || next.contains("system"))
            || (w == "-c"
                && matches!(
                    name,
                    "vim" | "vi" | "nvim" | "ex" | "view" | "rview" | "rvim"
                )
                && (next.starts_with(":!")
                    || next.starts_with('!')
                    || next.starts_with(":sh")
                    || next.starts_with(":term")
                    || next.contains("py")
                    || next.contains("lua")
                    || next.contains("system")))
            || w.ends_with("-shell-escape")
            || w.ends_with("enable-write18")
            || w.contains("\\write18")
            || (name == "sed"
                && c.operands()
                    .first()
                    .is_some_and(|o| o.text.to_ascii_lowercase() == *w)
                && sed_executes(w))
            || (w == "-c" && name == "tmate")
            || (name == "xargs"
                && matches!(w.as_str(), "-a" | "--arg-file")
                && next == "/dev/null")
            || w.starts_with("--exec=")
            || w == "--exec" && !matches!(name, "find")
            || w.starts_with("--interpreter")
            || w.starts_with("--pager=")
            || w.starts_with("--editor=")
            || w.starts_with("--hook")
            || w.starts_with("--pre-invoke")
            || w.contains("::pre-invoke")
            || w.contains("::post-invoke")
            || w.contains("dpkg::pre-install-pkgs")
            || (w == "-o" && (next.contains("invoke") || next.contains("proxycommand")))
            || (w == "-s" && name == "scp")
            || (w == "-S" && name == "scp")
            || w.starts_with("--command=")
            || (w == "--command" && !matches!(name, "sh" | "bash" | "su"))
            || w.starts_with("-exec=")
            || w.contains("'system")
            || w.contains("os.execute")
            || w.contains("--lua-exec")
            || w.contains("%{lua:");
        hit.then_some(k)
    });
    if let Some(k) = hook {
        let a = &c.args[k.min(c.args.len().saturating_sub(1))];
        f.add("indirect-exec", Severity::High, a.span, format!("`{name} {}` runs a command through one of {name}'s own options: it hides what really runs", a.text));
    }
    // Environment variables that name a program to run.
    for (k, v) in &c.assignments {
        if matches!(
            k.as_str(),
            "PAGER"
                | "MANPAGER"
                | "GIT_PAGER"
                | "EDITOR"
                | "VISUAL"
                | "GIT_SSH_COMMAND"
                | "GIT_EDITOR"
                | "SYSTEMD_PAGER"
                | "BROWSER"
                | "LESSOPEN"
                | "PERL5OPT"
                | "PYTHONSTARTUP"
                | "NODE_OPTIONS"
                | "BASH_ENV"
                | "ENV"
                | "PROMPT_COMMAND"
        ) && (mentions_shell(v).is_some()
            || v.contains(';')
            || v.contains('|')
            || v.starts_with('/')
                && !v.starts_with("/usr/bin/less")
                && !v.starts_with("/usr/bin/vim"))
        {
            f.add(
                "indirect-exec",
                Severity::High,
                c.span,
                format!("`{k}={v}` makes `{name}` run another program"),
            );
        }
    }
}

/// Whether a sed script runs commands (the `e` command or the `e` flag of `s`).
fn sed_executes(script: &str) -> bool {
    let t = script.trim();
    if t == "e" || t.starts_with("e ") {
        return true;
    }
    let b = t.as_bytes();
    (1..b.len()).any(|i| {
        b[i] == b'e'
            && (b[i - 1].is_ascii_digit()
                || b[i - 1] == b'$'
                || b[i - 1] == b';'
                || b[i - 1] == b'/')
            && b.get(i + 1).is_none_or(|n| *n == b' ' || *n == b';')
    })
}

/// A file written by one command, made executable or handed to another program to run.
fn temp_scripts(f: &mut Findings, script: &Script) {
    // Files written with echo/printf/cat and what was written.
    let mut written: Vec<(&str, String, Span)> = Vec::new();
    for c in &script.commands {
        for r in &c.redirs {
            if matches!(r.kind, RedirKind::Write | RedirKind::Append)
                && matches!(
                    c.name.as_str(),
                    "echo" | "printf" | "cat" | "tee" | "base64" | "xxd"
                )
            {
                let mut content: String = c.words().collect::<Vec<_>>().join(" ");
                for h in &c.redirs {
                    if h.kind == RedirKind::Here {
                        content.push('\n');
                        content.push_str(&h.target);
                    }
                }
                written.push((r.target.as_str(), content, r.span));
            }
        }
    }
    if written.is_empty() {
        return;
    }
    for (file, content, span) in &written {
        let lower = content.to_ascii_lowercase();
        let shell = mentions_shell(content).is_some();
        let exec = EXEC_CALLS.iter().any(|k| lower.contains(k))
            || lower.contains("#!/bin/sh")
            || lower.contains("#!/bin/bash");
        let used_by_other = script.commands.iter().any(|c| {
            c.args.iter().any(|a| {
                a.text.contains(*file)
                    || (file.starts_with('$') && a.text.contains(file.trim_start_matches('$')))
            }) && !matches!(c.name.as_str(), "echo" | "printf" | "cat" | "chmod" | "rm")
        });
        let chmod_x = script.commands.iter().any(|c| {
            c.name == "chmod"
                && c.words().any(|w| w.contains(*file))
                && c.words()
                    .any(|w| w.contains('x') || w.starts_with('7') || w.starts_with('5'))
        });
        if (shell || exec) && (used_by_other || chmod_x) {
            f.add(
                if shell {
                    "spawns-shell"
                } else {
                    "indirect-exec"
                },
                Severity::Critical,
                *span,
                format!("writes a script to `{file}` and has another program run it"),
            );
        } else if chmod_x && used_by_other {
            f.add(
                "indirect-exec",
                Severity::High,
                *span,
                format!("writes `{file}`, makes it executable and hands it to another program"),
            );
        } else if (shell || exec) && script.commands.len() > 1 {
            f.add(
                "indirect-exec",
                Severity::Medium,
                *span,
                format!("writes code that runs commands into `{file}`"),
            );
        }
    }
}

/// Running what was downloaded or decoded: `curl … | sh`, `sh <(curl …)`, `bash -c "$(wget …)"`,
/// `wget -O x; chmod +x x; ./x`, `echo … | base64 -d | sh`.
fn downloads_run(f: &mut Findings, script: &Script) {
    for c in &script.commands {
        if !is_runner(c) {
            continue;
        }
        let feeders = script
            .commands
            .iter()
            .filter(|o| o.pipeline == c.pipeline && o.stage < c.stage);
        for o in feeders {
            if is_downloader(o) {
                f.add(
                    "download-execute",
                    Severity::Critical,
                    c.span,
                    format!(
                        "runs what `{}` downloads without anyone reading it first",
                        o.name
                    ),
                );
            } else if matches!(
                o.name.as_str(),
                "base64"
                    | "base32"
                    | "xxd"
                    | "rev"
                    | "openssl"
                    | "gunzip"
                    | "zcat"
                    | "uudecode"
                    | "tr"
            ) || (o.name == "echo" || o.name == "printf")
                && o.words().any(|w| w.contains("\\x"))
            {
                f.add(
                    "decode-execute",
                    Severity::Critical,
                    c.span,
                    format!(
                        "runs code decoded by `{}`: it cannot be reviewed as written",
                        o.name
                    ),
                );
            }
        }
        // `sh <(curl …)`, `bash -c "$(curl …)"`, `eval "$(… | base64 -d)"`
        if c.args
            .iter()
            .any(|a| a.text.contains("$(") || a.text.contains('`') || a.text == "<(…)")
        {
            let inner = script.commands.iter().any(|o| {
                o.origin == Origin::Substitution
                    && (is_downloader(o) || matches!(o.name.as_str(), "base64" | "xxd"))
                    && o.span.0 >= c.span.0
                    && o.span.1 <= c.span.1 + 2
            });
            if inner {
                f.add(
                    "download-execute",
                    Severity::Critical,
                    c.span,
                    "runs what a substitution downloads or decodes".into(),
                );
            }
        }
    }
    // Download to a file, make it executable, run it.
    let downloaded: Vec<String> = script
        .commands
        .iter()
        .filter(|c| is_downloader(c))
        .flat_map(|c| {
            let mut names: Vec<String> = c
                .option_values(&["-o", "-O", "--output", "--output-document"])
                .map(|a| a.text.clone())
                .collect();
            names.extend(
                c.redirs
                    .iter()
                    .filter(|r| r.kind == RedirKind::Write)
                    .map(|r| r.target.clone()),
            );
            if c.name == "wget" || c.has_flag(&["-O", "--remote-name"]) {
                names.extend(c.words().filter(|w| w.contains("://")).filter_map(|u| {
                    u.rsplit('/')
                        .next()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                }));
            }
            names
        })
        .collect();
    for d in &downloaded {
        let base = base_name(d);
        let made_exec = script
            .commands
            .iter()
            .any(|c| c.name == "chmod" && c.words().any(|w| base_name(w) == base));
        let run = script.commands.iter().any(|c| {
            (base_name(&c.program) == base && c.program.contains('/'))
                || ((is_shell(&c.name)
                    || INTERPRETERS.contains(&c.name.as_str())
                    || c.name == "source"
                    || c.name == ".")
                    && c.words().any(|w| base_name(w) == base))
        });
        if run {
            f.add(
                "download-execute",
                Severity::Critical,
                (0, 0),
                format!(
                    "downloads `{base}`{} and runs it",
                    if made_exec {
                        ", makes it executable"
                    } else {
                        ""
                    }
                ),
            );
        } else if made_exec {
            f.add(
                "download-execute",
                Severity::Medium,
                (0, 0),
                format!("downloads `{base}` and makes it executable"),
            );
        }
    }
    let _ = f.has("download-execute");
}
