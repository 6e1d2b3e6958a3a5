"""defectbench: can Segment Anything segment industrial surface defects, and what does better?"""

__version__ = "0.1.0"
