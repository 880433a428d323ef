"""Real-name (L2) and face (L3) verification building blocks.

Resident ID numbers (GB 11643-1999), the population registry port and its
HTTP adapter, and face comparison (dlib locally or an HTTP provider).
"""
