"""The web side: health, provider webhooks, and the operators', marketers' and agents' UI."""
