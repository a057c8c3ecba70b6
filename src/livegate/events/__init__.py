"""The managed event stream: one upstream connection per LIVE room and credential
(tiktok/room_stream.py), shared by every subscriber, in TikTok's protobuf or as JSON.
No HTTP here: `webcast/events_routes.py` serves it as `GET /webcast/events` (WebSocket)."""
