"""A fake OpenAI-compatible chat-completions server for the LLM policy's tests."""

import json
from http.server import BaseHTTPRequestHandler

GOOD = {"batch_cap": 64, "prefill_decode_split": True, "kv_budget_fraction": 0.5, "quantization_tier": "FP16",
        "speculation_depth": 0, "priority_routing": True}


class FakeLLM(BaseHTTPRequestHandler):
    """Speaks the chat-completions protocol; replies come from a script shared by the test."""

    script: list = []
    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeLLM.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        reply = FakeLLM.script.pop(0) if FakeLLM.script else json.dumps(GOOD)
        if reply == "HTTP500":
            self.send_response(500)
            self.end_headers()
            return
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass
