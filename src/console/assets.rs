//! The console's static files, built into the binary (no Node.js, no build step): one HTML
//! page, one stylesheet, one script and an icon.

/// A static file.
pub(super) struct Asset {
    pub(super) content_type: &'static str,
    pub(super) body: &'static [u8],
}

/// The file served at `path`, if any.
pub(super) fn get(path: &str) -> Option<Asset> {
    let (content_type, body): (&'static str, &'static [u8]) = match path {
        "/ui/" | "/ui/index.html" => (
            "text/html; charset=utf-8",
            include_bytes!("assets/index.html"),
        ),
        "/ui/console.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("assets/console.js"),
        ),
        "/ui/console.css" => (
            "text/css; charset=utf-8",
            include_bytes!("assets/console.css"),
        ),
        "/ui/favicon.svg" => ("image/svg+xml", include_bytes!("assets/favicon.svg")),
        _ => return None,
    };
    Some(Asset { content_type, body })
}
