//! Stamps the build with the git revision it was built from, for
//! `nightly_refresh_build_info{git_rev}`: `NIGHTLY_REFRESH_GIT_REV` when set (a container
//! build without `.git` passes it in), else `git rev-parse`, else "unknown". A build never
//! fails for want of git.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=NIGHTLY_REFRESH_GIT_REV");
    // A new commit or checkout changes HEAD or the ref it points to.
    for path in ["HEAD", "logs/HEAD"] {
        // A path that does not exist would make every build rerun this script.
        if let Some(p) =
            git(&["rev-parse", "--git-path", path]).filter(|p| std::path::Path::new(p).exists())
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let rev = std::env::var("NIGHTLY_REFRESH_GIT_REV")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=NIGHTLY_REFRESH_GIT_REV={rev}");
}
