from services.console.bootstrap import build_app
from shared.service import serve

serve("console", build_app)
