//! What a path is, for safety: credentials, the account database, places that run code at login
//! or on a schedule, history and logs, system directories, or nothing in particular.

/// The kind of place a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathClass {
    /// A whole tree a user cannot afford to lose: `/`, `~`, a top-level system directory.
    Root,
    /// Secrets: password hashes, sudoers, private keys, cloud and registry tokens, process memory.
    Credentials,
    /// `/etc/passwd`, `/etc/group`.
    Accounts,
    /// Runs code later: cron, systemd units, init scripts, shell start-up files,
    /// `authorized_keys`, the dynamic loader's preload list.
    Persistence,
    /// Shell history and system logs: what an intruder erases.
    History,
    /// A block device: writing it destroys file systems.
    Disk,
    /// Anything else under a system directory (`/etc`, `/usr`, `/boot`, `/root`, `/sys`, …).
    System,
}

/// Files under system directories that any user reads every day.
const EVERYDAY: &[&str] = &[
    "/etc/os-release",
    "/etc/lsb-release",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/timezone",
    "/etc/localtime",
    "/etc/issue",
    "/etc/debian_version",
    "/etc/redhat-release",
    "/etc/shells",
    "/etc/locale.gen",
    "/etc/locale.conf",
    "/etc/fstab",
    "/etc/mtab",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/loadavg",
    "/proc/uptime",
    "/proc/version",
    "/proc/stat",
    "/proc/mounts",
    "/proc/partitions",
    "/proc/swaps",
    "/proc/self/status",
    "/usr/share/dict/words",
];

/// Devices and pseudo-files that are not places.
const PSEUDO: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
    "/dev/tty",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/full",
    "/dev/ptmx",
];

const SYSTEM_DIRS: &[&str] = &[
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot", "/root", "/sys", "/proc",
    "/dev", "/var", "/opt", "/srv", "/home", "/snap", "/mnt", "/media",
];

/// The path with `$HOME`, `${HOME}` and `/root` read as a home directory (`~`), runs of `/`
/// collapsed and a trailing `/` dropped.
pub fn normalize(path: &str) -> String {
    let p = path.trim_matches(|c| c == '"' || c == '\'');
    let p = if let Some(rest) = p.strip_prefix("${HOME}") {
        format!("~{rest}")
    } else if let Some(rest) = p.strip_prefix("$HOME") {
        format!("~{rest}")
    } else {
        p.to_string()
    };
    let mut out = String::with_capacity(p.len());
    let mut last_slash = false;
    for c in p.chars() {
        if c == '/' && last_slash {
            continue;
        }
        last_slash = c == '/';
        out.push(c);
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    if out.contains("/.") {
        // Resolve `.` and `..` (`/../../etc/shadow` is `/etc/shadow`).
        let absolute = out.starts_with('/');
        let mut parts: Vec<&str> = Vec::new();
        for seg in out.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        let joined = parts.join("/");
        return if absolute {
            format!("/{joined}")
        } else {
            joined
        };
    }
    out
}

fn under(p: &str, dir: &str) -> bool {
    p == dir || (p.starts_with(dir) && p.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// The path's home-relative rest (`.bashrc` for `~/.bashrc`, `/root/.bashrc` or
/// `/home/ann/.bashrc`).
fn home_rest(p: &str) -> Option<&str> {
    if let Some(r) = p.strip_prefix("~/") {
        return Some(r);
    }
    if let Some(r) = p.strip_prefix("/root/") {
        return Some(r);
    }
    if let Some(r) = p.strip_prefix("/home/") {
        return r.split_once('/').map(|(_, rest)| rest);
    }
    // `.ssh/id_rsa`, `.bashrc` relative to the working directory (commonly home).
    p.starts_with('.').then_some(p)
}

/// What `path` names, if anything in particular.
pub fn classify(path: &str) -> Option<PathClass> {
    let p = normalize(path);
    let p = p.as_str();
    if p.is_empty() || PSEUDO.contains(&p) || EVERYDAY.contains(&p) {
        return None;
    }
    if matches!(p, "/" | "/*" | "~" | "~/*" | "/root" | "/home" | "/home/*")
        || (SYSTEM_DIRS.contains(&p.trim_end_matches("/*")) && p != "/proc/*")
    {
        return Some(PathClass::Root);
    }
    if let Some(rest) = home_rest(p) {
        let file = rest.trim_start_matches("./");
        if file.starts_with(".ssh/id_") && !file.ends_with(".pub")
            || file.starts_with(".aws/credentials")
            || file.starts_with(".gnupg")
            || file == ".netrc"
            || file == ".pgpass"
            || file == ".git-credentials"
            || file.starts_with(".docker/config.json")
            || file.starts_with(".kube/config")
            || file.starts_with(".config/gcloud")
            || file.starts_with(".azure")
            || file.starts_with(".password-store")
        {
            return Some(PathClass::Credentials);
        }
        if matches!(
            file,
            ".bashrc"
                | ".bash_profile"
                | ".bash_login"
                | ".bash_logout"
                | ".profile"
                | ".zshrc"
                | ".zprofile"
                | ".zshenv"
                | ".kshrc"
                | ".cshrc"
                | ".tcshrc"
                | ".xinitrc"
                | ".xprofile"
                | ".ssh/authorized_keys"
                | ".ssh/authorized_keys2"
                | ".ssh/config"
                | ".ssh/rc"
                | ".vimrc"
                | ".gitconfig"
        ) || file.starts_with(".config/autostart")
            || file.starts_with(".config/systemd")
            || file.starts_with(".config/fish/config")
        {
            return Some(PathClass::Persistence);
        }
        if matches!(
            file,
            ".bash_history"
                | ".zsh_history"
                | ".history"
                | ".sh_history"
                | ".lesshst"
                | ".viminfo"
                | ".python_history"
                | ".mysql_history"
                | ".psql_history"
                | ".node_repl_history"
        ) {
            return Some(PathClass::History);
        }
        if file.starts_with(".ssh") {
            return Some(PathClass::Credentials);
        }
    }
    if p.starts_with("/etc/shadow")
        || p.starts_with("/etc/gshadow")
        || p.starts_with("/etc/sudoers")
        || p == "/etc/master.passwd"
        || p == "/etc/security/opasswd"
        || under(p, "/etc/ssl/private")
        || (p.starts_with("/etc/ssh/ssh_host_") && !p.ends_with(".pub"))
        || p.starts_with("/etc/krb5.keytab")
        || p == "/dev/mem"
        || p == "/dev/kmem"
        || p == "/proc/kcore"
        || (p.starts_with("/proc/")
            && (p.ends_with("/environ") || p.ends_with("/mem") || p.ends_with("/maps")))
        || under(p, "/var/lib/sss")
        || under(p, "/etc/pki/private")
    {
        return Some(PathClass::Credentials);
    }
    if p.starts_with("/etc/passwd")
        || p.starts_with("/etc/group")
        || p == "/etc/subuid"
        || p == "/etc/subgid"
    {
        return Some(PathClass::Accounts);
    }
    if p.starts_with("/etc/cron")
        || p == "/etc/anacrontab"
        || under(p, "/var/spool/cron")
        || under(p, "/var/spool/at")
        || under(p, "/etc/systemd")
        || under(p, "/lib/systemd/system")
        || under(p, "/usr/lib/systemd/system")
        || under(p, "/etc/init.d")
        || under(p, "/etc/init")
        || p == "/etc/rc.local"
        || p.starts_with("/etc/rc")
        || p == "/etc/profile"
        || under(p, "/etc/profile.d")
        || p == "/etc/bash.bashrc"
        || p == "/etc/bashrc"
        || p == "/etc/zsh/zshrc"
        || p == "/etc/environment"
        || p.starts_with("/etc/ld.so.preload")
        || p.starts_with("/etc/ld.so.conf")
        || under(p, "/etc/pam.d")
        || under(p, "/etc/update-motd.d")
        || under(p, "/etc/xdg/autostart")
        || under(p, "/etc/udev/rules.d")
        || under(p, "/etc/modules-load.d")
        || p == "/etc/modules"
        || under(p, "/etc/apt/apt.conf.d")
        || under(p, "/etc/logrotate.d")
        || p == "/etc/logrotate.conf"
        || under(p, "/etc/NetworkManager/dispatcher.d")
        || p == "/etc/inittab"
    {
        return Some(PathClass::Persistence);
    }
    if under(p, "/var/log") || p == "/var/run/utmp" || p == "/run/utmp" {
        return Some(PathClass::History);
    }
    if let Some(dev) = p.strip_prefix("/dev/")
        && [
            "sd", "hd", "vd", "xvd", "nvme", "mmcblk", "dm-", "md", "disk/", "mapper/", "loop",
        ]
        .iter()
        .any(|d| dev.starts_with(d))
    {
        return Some(PathClass::Disk);
    }
    if p.starts_with("/dev/")
        || p.starts_with("/home/")
        || p.starts_with("/mnt/")
        || p.starts_with("/media/")
        || p.starts_with("/opt/")
        || p.starts_with("/srv/")
        || p.starts_with("/snap/")
    {
        return None;
    }
    if SYSTEM_DIRS.iter().any(|d| under(p, d)) {
        return Some(PathClass::System);
    }
    None
}

/// Characters a path may be made of, for finding paths inside program text.
fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '/' | '.' | '_' | '-' | '+' | '~' | '*' | '@' | '%' | '$')
}

/// Absolute and home paths inside free text (a program given with `-c`, `-e`, a here-document),
/// with their byte offsets.
pub fn paths_in(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let start = i;
            let c = bytes[i] as char;
            // After `:` only when not a URL's `//host` (`file:/etc/x`, `man:/etc/x`), except
            // `file:///etc/x`; after a one-letter option (`-H/bin/sh`).
            let after_colon = start > 0
                && bytes[start - 1] == b':'
                && (!bytes[start..].starts_with(b"//") || bytes[start..].starts_with(b"///"));
            let after_option = start == 2 && bytes[0] == b'-' && bytes[1].is_ascii_alphabetic();
            let boundary = start == 0
                || (!path_char(bytes[start - 1] as char) && bytes[start - 1] != b':')
                || bytes[start - 1] == b'@'
                || after_colon
                || after_option;
            let begins = c == '/'
                || (c == '~' && bytes.get(i + 1) == Some(&b'/'))
                || bytes[i..].starts_with(b"$HOME/")
                || bytes[i..].starts_with(b"${HOME}/");
            if boundary && begins {
                let mut end = if bytes[i..].starts_with(b"${HOME}") {
                    i + 7
                } else {
                    i + 1
                };
                while end < bytes.len() && path_char(bytes[end] as char) {
                    end += 1;
                }
                i = end;
                let start = if bytes[start..].starts_with(b"///") {
                    start + 2
                } else {
                    start
                };
                // `{/etc/shadow}`, `"/bin/sh")`: braces close around it.
                let p = text[start..end].trim_end_matches(['}', '.', ',']);
                if p.len() > 1 {
                    return Some((start, p));
                }
                continue;
            }
            i += 1;
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify("/etc/shadow"), Some(PathClass::Credentials));
        assert_eq!(classify("~/.ssh/id_ed25519"), Some(PathClass::Credentials));
        assert_eq!(
            classify("~/.ssh/id_ed25519.pub"),
            Some(PathClass::Credentials)
        );
        assert_eq!(classify("/etc/passwd"), Some(PathClass::Accounts));
        assert_eq!(classify("/etc/cron.d/update"), Some(PathClass::Persistence));
        assert_eq!(classify("$HOME/.bashrc"), Some(PathClass::Persistence));
        assert_eq!(classify("/root/.bashrc"), Some(PathClass::Persistence));
        assert_eq!(classify("~/.bash_history"), Some(PathClass::History));
        assert_eq!(classify("/dev/sda1"), Some(PathClass::Disk));
        assert_eq!(classify("/"), Some(PathClass::Root));
        assert_eq!(classify("/usr/"), Some(PathClass::Root));
        assert_eq!(
            classify("/usr/share/base-passwd/group.master"),
            Some(PathClass::System)
        );
        assert_eq!(classify("/proc/cpuinfo"), None);
        assert_eq!(classify("/dev/null"), None);
        assert_eq!(classify("/home/user/file.txt"), None);
        assert_eq!(classify("notes.txt"), None);
        assert_eq!(classify("/tmp/x"), None);
    }

    #[test]
    fn paths_inside_program_text() {
        let found: Vec<&str> =
            paths_in(r#"import os; open("/etc/shadow").read(); os.system("/bin/sh")"#)
                .map(|(_, p)| p)
                .collect();
        assert_eq!(found, ["/etc/shadow", "/bin/sh"]);
        let found: Vec<&str> = paths_in("a/b c ~/.bashrc http://x/y")
            .map(|(_, p)| p)
            .collect();
        assert_eq!(found, ["~/.bashrc"]);
    }
}
