"""KFP REST API v2beta1 (placeholder: being written)."""

from fastapi import APIRouter

router = APIRouter()
