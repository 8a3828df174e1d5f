"""HTTP routes: `*_api` modules answer JSON under /api/v1, `*_pages` modules render pages."""
