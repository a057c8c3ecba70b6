"""A fake TikTok: every TikTok path the gateway uses, under one base URL."""
