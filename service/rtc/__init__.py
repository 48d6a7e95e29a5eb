"""WebRTC calls: ICE servers with TURN credentials, and the signaling relay."""
