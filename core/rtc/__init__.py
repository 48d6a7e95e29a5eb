"""WebRTC calls: pure rules of ICE server URLs and of short-lived TURN credentials."""
