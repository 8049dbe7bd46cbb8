//! Scripts as code: which file an interpreter was given as its program.
//!
//! `python3 /tmp/x.py`, `sh ./drop.sh`, `perl -w x.pl`, `node app.js`: the interpreter is an
//! image binary, the code it runs is the script file. Each interpreter family has its own options
//! that take a value or mean "no file" (`sh -c`, `python -m`, `node -e`, `perl -e`, `php -r`);
//! those are handled so that inline code is not mistaken for a file name.

/// Interpreter families whose command lines we understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpreter {
    Shell,
    Python,
    Perl,
    Ruby,
    Node,
    Php,
}

impl Interpreter {
    /// Recognise an interpreter by the base name of its executable (or of `argv[0]` for busybox).
    pub fn from_name(name: &[u8]) -> Option<Interpreter> {
        let n = std::str::from_utf8(name).ok()?;
        let versioned = |prefix: &str| {
            n.strip_prefix(prefix)
                .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
        };
        Some(match n {
            "sh" | "bash" | "dash" | "ash" | "zsh" | "ksh" | "mksh" | "rbash" => Interpreter::Shell,
            "node" | "nodejs" => Interpreter::Node,
            _ if versioned("python") || versioned("pypy") => Interpreter::Python,
            _ if versioned("perl") => Interpreter::Perl,
            _ if versioned("ruby") => Interpreter::Ruby,
            _ if versioned("php") => Interpreter::Php,
            _ => return None,
        })
    }

    /// Options that consume the next argument (when given alone).
    fn takes_value(self, opt: &[u8]) -> bool {
        let list: &[&[u8]] = match self {
            Interpreter::Shell => &[b"-o", b"+o", b"-O", b"+O", b"--rcfile", b"--init-file"],
            Interpreter::Python => &[b"-W", b"-X", b"-Q", b"--check-hash-based-pycs"],
            Interpreter::Perl => &[b"-I", b"-M", b"-m", b"-C"],
            Interpreter::Ruby => &[b"-I", b"-r", b"-E", b"-C", b"--encoding"],
            Interpreter::Node => &[
                b"-r",
                b"--require",
                b"--import",
                b"--loader",
                b"--experimental-loader",
                b"--conditions",
                b"-C",
                b"--input-type",
                b"--title",
            ],
            Interpreter::Php => &[b"-d", b"-c", b"-z"],
        };
        list.contains(&opt)
    }

    /// Options after which there is no program file (inline code, a module, stdin).
    fn means_no_file(self, opt: &[u8]) -> bool {
        match self {
            // A short-option cluster containing `c` (`-c`, `-ec`, `-xc`) or `s` reads a command
            // string or stdin.
            Interpreter::Shell => {
                opt.len() > 1
                    && opt[0] == b'-'
                    && opt[1] != b'-'
                    && opt[1..].iter().any(|b| *b == b'c' || *b == b's')
            }
            Interpreter::Python => opt == b"-" || opt.starts_with(b"-c") || opt.starts_with(b"-m"),
            Interpreter::Perl => opt == b"-" || opt.starts_with(b"-e") || opt.starts_with(b"-E"),
            Interpreter::Ruby => opt == b"-" || opt.starts_with(b"-e"),
            Interpreter::Node => matches!(
                opt,
                b"-" | b"-e" | b"--eval" | b"-p" | b"--print" | b"-i" | b"--interactive"
            ),
            Interpreter::Php => opt == b"-" || opt == b"-r" || opt == b"-a",
        }
    }
}

/// Base name of a path.
pub fn basename(p: &[u8]) -> &[u8] {
    p.rsplit(|b| *b == b'/').next().unwrap_or(p)
}

/// The interpreter of an exec: by the executable's name, or by `argv[0]` for multi-call binaries
/// such as busybox.
pub fn interpreter_of(exepath: &[u8], argv0: Option<&[u8]>) -> Option<Interpreter> {
    let exe = basename(exepath);
    if exe == b"busybox" {
        return argv0.map(basename).and_then(Interpreter::from_name);
    }
    Interpreter::from_name(exe)
}

/// The program file given to interpreter `it` in `args` (argv, `argv[0]` included), if any.
pub fn script_argument(it: Interpreter, args: &[Vec<u8>]) -> Option<&[u8]> {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_slice();
        if a == b"--" {
            return args.get(i + 1).map(Vec::as_slice).filter(|s| !s.is_empty());
        }
        if it == Interpreter::Php && a == b"-f" {
            return args.get(i + 1).map(Vec::as_slice);
        }
        let is_option = a.len() > 1 && (a[0] == b'-' || (it == Interpreter::Shell && a[0] == b'+'));
        if !is_option {
            return (a != b"-" && !a.is_empty()).then_some(a);
        }
        if it.means_no_file(a) {
            return None;
        }
        i += if it.takes_value(a) { 2 } else { 1 };
    }
    None
}

/// Join a script path with the working directory when it is relative; `None` when it is relative
/// and the working directory is unknown.
pub fn absolute(path: &[u8], cwd: Option<&[u8]>) -> Option<Vec<u8>> {
    if path.first() == Some(&b'/') {
        return Some(normalize(path));
    }
    let cwd = cwd.filter(|c| c.first() == Some(&b'/'))?;
    let mut joined = cwd.to_vec();
    joined.push(b'/');
    joined.extend_from_slice(path);
    Some(normalize(&joined))
}

/// Lexically normalise an absolute path: drop `.` and empty components, apply `..` (never above
/// `/`).
pub fn normalize(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    fn script(exe: &str, args: &[&str]) -> Option<String> {
        let args = argv(args);
        let it = interpreter_of(exe.as_bytes(), args.first().map(Vec::as_slice))?;
        script_argument(it, &args).map(|s| String::from_utf8_lossy(s).into_owned())
    }

    #[test]
    fn shells() {
        assert_eq!(
            script("/bin/sh", &["sh", "/tmp/x.sh"]).as_deref(),
            Some("/tmp/x.sh")
        );
        assert_eq!(
            script("/bin/bash", &["bash", "-x", "./run.sh", "a"]).as_deref(),
            Some("./run.sh")
        );
        assert_eq!(
            script("/bin/bash", &["bash", "-o", "pipefail", "r.sh"]).as_deref(),
            Some("r.sh")
        );
        assert_eq!(
            script("/bin/sh", &["sh", "-c", "/tmp/x.sh"]),
            None,
            "inline command"
        );
        assert_eq!(script("/bin/sh", &["sh", "-ec", "echo"]), None);
        assert_eq!(script("/bin/sh", &["sh", "-s"]), None, "stdin");
        assert_eq!(script("/bin/sh", &["sh"]), None, "interactive");
        assert_eq!(
            script("/bin/dash", &["dash", "--", "-weird.sh"]).as_deref(),
            Some("-weird.sh")
        );
        // busybox: the applet is argv[0].
        assert_eq!(
            script("/bin/busybox", &["sh", "/tmp/b.sh"]).as_deref(),
            Some("/tmp/b.sh")
        );
        assert_eq!(script("/bin/busybox", &["ls", "/tmp"]), None);
    }

    #[test]
    fn python_perl_ruby_node_php() {
        assert_eq!(
            script("/usr/bin/python3.11", &["python3", "-u", "app.py"]).as_deref(),
            Some("app.py")
        );
        assert_eq!(
            script("/usr/bin/python3", &["python3", "-W", "ignore", "x.py"]).as_deref(),
            Some("x.py")
        );
        assert_eq!(
            script("/usr/bin/python3", &["python3", "-m", "http.server"]),
            None
        );
        assert_eq!(
            script("/usr/bin/python3", &["python3", "-c", "print(1)"]),
            None
        );
        assert_eq!(
            script("/usr/bin/perl", &["perl", "-w", "x.pl"]).as_deref(),
            Some("x.pl")
        );
        assert_eq!(script("/usr/bin/perl", &["perl", "-e", "print 1"]), None);
        assert_eq!(
            script("/usr/bin/ruby", &["ruby", "-r", "json", "x.rb"]).as_deref(),
            Some("x.rb")
        );
        assert_eq!(
            script("/usr/bin/node", &["node", "--require", "m", "srv.js"]).as_deref(),
            Some("srv.js")
        );
        assert_eq!(script("/usr/bin/node", &["node", "-e", "1"]), None);
        assert_eq!(
            script("/usr/bin/php8.2", &["php", "-f", "i.php"]).as_deref(),
            Some("i.php")
        );
        assert_eq!(script("/usr/bin/php", &["php", "-r", "echo 1;"]), None);
        assert_eq!(
            script("/usr/bin/pythonista", &["pythonista", "x.py"]),
            None,
            "not python"
        );
        assert_eq!(script("/tmp/evil", &["evil", "x"]), None);
    }

    #[test]
    fn paths_are_made_absolute_and_normal() {
        assert_eq!(
            absolute(b"x.sh", Some(b"/app")),
            Some(b"/app/x.sh".to_vec())
        );
        assert_eq!(
            absolute(b"../x.sh", Some(b"/app/sub")),
            Some(b"/app/x.sh".to_vec())
        );
        assert_eq!(absolute(b"/a/./b/../c", None), Some(b"/a/c".to_vec()));
        assert_eq!(
            absolute(b"../../../../x", Some(b"/a")),
            Some(b"/x".to_vec())
        );
        assert_eq!(absolute(b"x.sh", None), None);
        assert_eq!(normalize(b"/"), b"/".to_vec());
    }
}
