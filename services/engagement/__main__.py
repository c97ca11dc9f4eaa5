from services.engagement.bootstrap import build_app
from shared.service import serve

serve("engagement", build_app)
