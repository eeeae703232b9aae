"""A simulator of liver CEUS exams (NumPy/OpenCV only, deterministic by seed).

``physiology`` holds the time-intensity curves and lesion patterns, ``scene`` the image
formation, ``screen`` the scanner screen, ``clips`` the fast model-input path and
``recording`` the full-screen video writer.
"""
