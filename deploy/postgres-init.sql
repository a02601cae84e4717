CREATE DATABASE argus OWNER temporal;
