//! The configuration through the real binary: `init`, `config
//! get|set|list|path`, flags over the file over defaults, and the errors a
//! bad file gives. Every run gets a temporary HOME, so the real
//! `~/.xearthlayer` is never touched.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TEXTURE: &str = "25264_10368_BI16.dds";

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join(".xearthlayer/config.ini")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xearthlayer"));
        command
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("XEARTHLAYER_CONFIG")
            .env_remove("XEARTHLAYER_MAPBOX_TOKEN");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_a_commented_file_and_never_overwrites_without_force() {
    let home = Home::new();
    let out = home.run(&["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(home.config()).unwrap();
    for expected in [
        "[provider]",
        ";type = auto",
        "[codes]",
        "[cache]",
        ";memory_size = 1GiB",
        "[generation]",
        "[xplane]",
        "[packages]",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert_eq!(mode(&home.config()), 0o600);

    std::fs::write(home.config(), "[cache]\nmemory_size = 3GiB\n").unwrap();
    let out = home.run(&["init"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(home.config()).unwrap(),
        "[cache]\nmemory_size = 3GiB\n"
    );

    let out = home.run(&["init", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(home.config()).unwrap(), text);
}

#[test]
fn config_set_get_list_and_path() {
    let home = Home::new();
    let out = home.run(&["config", "path"]);
    assert_eq!(stdout(&out).trim(), home.config().to_str().unwrap());

    // Setting a token creates the file, private.
    let out = home.run(&["config", "set", "provider.mapbox_token", "pk.secret"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("pk.secret"));
    assert_eq!(mode(&home.config()), 0o600);
    let out = home.run(&["config", "set", "cache.memory_size", "3GiB"]);
    assert!(out.status.success(), "{}", stderr(&out));

    assert_eq!(
        stdout(&home.run(&["config", "get", "cache.memory_size"])).trim(),
        "3GiB"
    );
    assert_eq!(
        stdout(&home.run(&["config", "get", "provider.mapbox_token"])).trim(),
        "pk.secret"
    );
    assert_eq!(
        stdout(&home.run(&["config", "get", "cache.disk_size"])).trim(),
        "20GiB"
    );

    let list = stdout(&home.run(&["config", "list"]));
    assert!(!list.contains("pk.secret"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("provider.mapbox_token") && l.contains("********")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("cache.memory_size") && l.contains("3GiB")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("cache.disk_size") && l.contains("(default)")),
        "{list}"
    );

    let out = home.run(&["config", "set", "cache.memory_size", "lots"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cache.memory_size: 'lots' is not a size"),
        "{}",
        stderr(&out)
    );
    let out = home.run(&["config", "get", "cache.colour"]);
    assert!(
        stderr(&out).contains("unknown key 'cache.colour'"),
        "{}",
        stderr(&out)
    );

    // XEARTHLAYER_CONFIG names another file; --config beats it.
    let other = home.dir.path().join("other.ini");
    let out = home
        .command(&["config", "path"])
        .env("XEARTHLAYER_CONFIG", &other)
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), other.to_str().unwrap());
    let out = home
        .command(&["config", "path", "--config", "/tmp/flag.ini"])
        .env("XEARTHLAYER_CONFIG", &other)
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "/tmp/flag.ini");
}

/// `info` shows the provider and format the settings resolve to.
fn info(home: &Home, extra: &[&str]) -> (String, String) {
    let mut args = vec!["info", TEXTURE];
    args.extend_from_slice(extra);
    let out = home.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap_or_default()
    };
    (field("provider"), field("file"))
}

#[test]
fn flags_beat_the_file_and_the_file_beats_defaults() {
    let home = Home::new();
    let (provider, file) = info(&home, &[]);
    assert!(provider.starts_with("Bing"), "{provider}");
    assert!(file.contains("bc1"), "{file}");

    std::fs::create_dir_all(home.config().parent().unwrap()).unwrap();
    std::fs::write(
        home.config(),
        "[provider]\ntype = arcgis\n\n[texture]\nformat = bc3\n",
    )
    .unwrap();
    let (provider, file) = info(&home, &[]);
    assert!(provider.starts_with("ArcGIS"), "{provider}");
    assert!(file.contains("bc3"), "{file}");

    let (provider, file) = info(&home, &["--provider", "usgs", "--format", "bc1"]);
    assert!(provider.starts_with("USGS"), "{provider}");
    assert!(file.contains("bc1"), "{file}");

    // A file named by --config replaces the default one.
    let other = home.write("eox.ini", "[provider]\ntype = eox\n");
    let (provider, _) = info(&home, &["--config", other.to_str().unwrap()]);
    assert!(provider.starts_with("EOX"), "{provider}");
}

#[test]
fn bad_files_are_errors_naming_file_line_and_key() {
    let home = Home::new();
    let check = |text: &str, wanted: &[&str]| {
        let path = home.write("bad.ini", text);
        let out = home.run(&["info", TEXTURE, "--config", path.to_str().unwrap()]);
        assert!(!out.status.success(), "accepted:\n{text}");
        let err = stderr(&out);
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        for w in wanted {
            assert!(err.contains(w), "no '{w}' in: {err}");
        }
    };
    check(
        "[cache]\n; sizes\nmemory_size = 2 parsecs\n",
        &["line 3", "cache.memory_size", "unknown size unit"],
    );
    check(
        "[provider]\ntype = osm\n",
        &["line 2", "provider.type", "unknown provider 'osm'"],
    );
    check(
        "[generation]\nbudget_seconds = -1\n",
        &["line 2", "generation.budget_seconds"],
    );

    // Unreadable: missing, or a folder.
    for path in ["/nonexistent/config.ini", "/"] {
        let out = home.run(&["info", TEXTURE, "--config", path]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("cannot read the configuration file"),
            "{}",
            stderr(&out)
        );
    }

    // An unknown key is a warning only.
    let path = home.write("typo.ini", "[cache]\nmemroy_size = 2GiB\n");
    let out = home.run(&["info", TEXTURE, "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("line 2: unknown key 'memroy_size' in [cache]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn info_says_which_provider_a_code_maps_to_and_why() {
    let home = Home::new();
    std::fs::create_dir_all(home.config().parent().unwrap()).unwrap();
    std::fs::write(
        home.config(),
        "[codes]\nDOP40 = https://dop.example/wmts/{z}/{y}/{x}.jpeg?key=secret\nArc@ = arcgis\n\n\
         [provider_urls]\narcgis = http://127.0.0.1:9/tiles/{z}/{x}/{y}.jpg\n",
    )
    .unwrap();
    let line = |name: &str, flags: &[&str]| {
        let mut args = vec!["info", name];
        args.extend_from_slice(flags);
        let out = home.run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let out = line("22896_31680_DOP4016.dds", &[]);
    assert!(
        out.contains("maps code 'DOP40'") && out.contains("[codes]"),
        "{out}"
    );
    assert!(
        out.contains("https://dop.example/wmts/16/22896/31680.jpeg"),
        "{out}"
    );
    assert!(
        !out.contains("folder 'DOP40-dop.example-") || !out.contains("secret'"),
        "{out}"
    );
    let out = line("45808_63392_Arc@17.dds", &[]);
    assert!(
        out.contains("ArcGIS") && out.contains("http://127.0.0.1:9/tiles/17/63392/45808.jpg"),
        "{out}"
    );
    let out = line("25264_10368_CA_NAIP16.dds", &[]);
    assert!(
        out.contains("NAIP") && out.contains("its Ortho4XP code"),
        "{out}"
    );
    let out = line("45840_63392_FR2010_17.dds", &[]);
    assert!(
        out.contains("no provider maps code 'FR2010_'") && out.contains("Bing"),
        "{out}"
    );
    let out = line("45840_63392_FR2010_17.dds", &["--provider", "usgs"]);
    assert!(out.contains("USGS") && out.contains("forced"), "{out}");

    std::fs::write(home.config(), "[codes]\nDOP40 = not a url\n").unwrap();
    let out = home.run(&["info", "22896_31680_DOP4016.dds"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("line 2") && stderr(&out).contains("codes.DOP40"),
        "{}",
        stderr(&out)
    );
}
