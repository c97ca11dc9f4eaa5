from services.feedback.bootstrap import build_app
from shared.service import serve

serve("feedback", build_app)
