//! Headless Chromium (Debian's `chromium` package) for checking and measuring
//! `report.html`: the page's DOM after its script ran, and screenshots. Every run
//! gets a fresh profile and no network services.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Where Chromium is: `/usr/bin/chromium`, or `chromium` / `chromium-browser` on the
/// `PATH`.
pub fn chromium() -> Option<PathBuf> {
    let fixed = Path::new("/usr/bin/chromium");
    if fixed.is_file() {
        return Some(fixed.to_owned());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .flat_map(|dir| [dir.join("chromium"), dir.join("chromium-browser")])
        .find(|path| path.is_file())
}

/// The flags of every run: headless, no sandbox (tests run as root in containers),
/// nothing that reaches the network, a fresh profile.
fn base_command(chromium: &Path, profile: &Path) -> Command {
    let mut command = Command::new(chromium);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// A `file://` URL for `page` with `fragment` (`#selftest`, or empty).
pub fn file_url(page: &Path, fragment: &str) -> anyhow::Result<String> {
    let absolute = std::fs::canonicalize(page)
        .with_context(|| format!("{} does not exist", page.display()))?;
    Ok(format!("file://{}{fragment}", absolute.display()))
}

/// The DOM of `url` once its scripts ran (`--dump-dom`).
///
/// # Errors
/// Chromium cannot start, fails, or prints no DOM.
pub fn dump_dom(chromium: &Path, url: &str) -> anyhow::Result<String> {
    let profile = tempfile::tempdir().context("a profile directory for Chromium")?;
    let output = base_command(chromium, profile.path())
        .arg("--dump-dom")
        .arg(url)
        .output()
        .with_context(|| format!("could not start {}", chromium.display()))?;
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || !dom.contains("<html") {
        bail!(
            "{} --dump-dom {url} failed ({}): {}",
            chromium.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(dom)
}

/// A PNG of `url`'s top at `out`: a `width`×`height` window (CSS pixels) drawn at
/// `scale` (0.75: a quarter fewer pixels each way, a smaller file). A page that
/// scrolls while loading comes out blank in headless screenshots, so `url` should
/// name no fragment that scrolls.
///
/// # Errors
/// Chromium cannot start or writes no file.
pub fn screenshot(
    chromium: &Path,
    url: &str,
    out: &Path,
    (width, height): (u32, u32),
    scale: f32,
) -> anyhow::Result<()> {
    let profile = tempfile::tempdir().context("a profile directory for Chromium")?;
    let output = base_command(chromium, profile.path())
        .arg("--hide-scrollbars")
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--force-device-scale-factor={scale}"))
        .arg(format!("--screenshot={}", out.display()))
        .arg(url)
        .output()
        .with_context(|| format!("could not start {}", chromium.display()))?;
    if !output.status.success() || !out.is_file() {
        bail!(
            "{} --screenshot {url} failed ({}): {}",
            chromium.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
